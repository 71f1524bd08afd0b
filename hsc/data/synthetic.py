"""The embedded default dataset: synthetic scenes written in SCAN's exact file layout.

``generate`` writes ``{train,dev,test}_ims.npy`` (float32, N x regions x feat_dim) and
``{train,dev,test}_caps.txt`` (5 lines per image, caption j of image j // 5). One world
(concepts, prototypes, role maps) is shared by the splits; each split draws its own scenes
from its own random stream, so the same params give byte-identical files. See
docs/synthetic.md for the structure and the knobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hsc.atomic import save_npy, write_json, write_text
from hsc.data.config import CocoFormatParams, SyntheticParams
from hsc.data.datasets import DATASETS
from hsc.data.precomp import captions_file, features_file
from hsc.data.synthetic_captions import write_captions
from hsc.data.synthetic_lexicon import ATTRIBUTES, OBJECTS, RELATIONS
from hsc.data.synthetic_scenes import Scene, TwinEdit, make_twin, max_relations, sample_scene
from hsc.data.synthetic_world import World, render_regions, sample_world
from hsc.errors import HscError
from hsc.progress import bar

SPLITS = DATASETS["synthetic"].splits
MIN_CLUTTER_REGIONS = 2
TEST_FOLDS = 5  # the 5-fold 1K protocol slices the test split into this many equal folds


@dataclass(frozen=True)
class SyntheticSplit:
    """One split in memory: what each image shows, its features and its captions."""

    scenes: list[Scene]
    twin_of: np.ndarray  # int64 (N,): the image this one is a near-twin of, or -1
    edits: list[TwinEdit | None]  # per image: what tells it from its twin partner
    features: np.ndarray  # float32 (N, regions, feat_dim)
    captions: list[str]  # 5 per image, in image order


def check_params(cfg: SyntheticParams) -> None:
    """Reject sizes the lexicon or the region budget cannot meet, naming the params key.

    The download stage runs this first, naming the params file in front of the message.
    """
    for key, value, pool in (("n_objects", cfg.n_objects, OBJECTS), ("n_attributes", cfg.n_attributes, ATTRIBUTES),
                             ("n_relations", cfg.n_relations, RELATIONS)):
        if value > len(pool):
            raise HscError(f"synthetic.{key} = {value} is more than the {len(pool)} the synthetic "
                           f"lexicon has words for; use at most {len(pool)}")
    if cfg.min_objects > cfg.max_objects:
        raise HscError(f"synthetic.min_objects = {cfg.min_objects} is above synthetic.max_objects "
                       f"= {cfg.max_objects}; lower it")
    if cfg.max_objects > cfg.n_objects:
        raise HscError(f"synthetic.max_objects = {cfg.max_objects} is above synthetic.n_objects "
                       f"= {cfg.n_objects} (a scene's objects have distinct categories); lower it")
    needed = cfg.max_objects * cfg.regions_per_object + max_relations(cfg.max_objects) + MIN_CLUTTER_REGIONS
    if cfg.regions < needed:
        raise HscError(f"synthetic.regions = {cfg.regions} cannot hold max_objects x regions_per_object "
                       f"+ {max_relations(cfg.max_objects)} relation + {MIN_CLUTTER_REGIONS} clutter regions; "
                       f"use at least {needed}")
    if cfg.n_test % TEST_FOLDS:
        raise HscError(f"synthetic.n_test = {cfg.n_test} is not divisible by {TEST_FOLDS} "
                       f"(the 5-fold test protocol); use a multiple of {TEST_FOLDS}")


def build_world(cfg: SyntheticParams) -> World:
    """The concept inventory and prototypes of ``cfg.seed`` (after checking ``cfg``)."""
    check_params(cfg)
    return sample_world(cfg, _streams(cfg)[0])


def build_dataset(cfg: SyntheticParams) -> tuple[World, dict[str, SyntheticSplit]]:
    """The world and every split, in memory."""
    world = build_world(cfg)
    sizes = {"train": cfg.n_train, "dev": cfg.n_dev, "test": cfg.n_test}
    splits = {}
    with bar(unit="img") as progress:
        for split, rng in zip(SPLITS, _streams(cfg)[1:]):
            task = progress.add_task(f"synthetic {split}", total=sizes[split])
            splits[split] = _build_split(world, cfg, sizes[split], rng, lambda task=task: progress.advance(task))
    return world, splits


def generate(cfg: SyntheticParams, out_dir: Path) -> None:
    """Write the three splits in SCAN's layout under ``out_dir``, each file atomically."""
    out_dir = Path(out_dir)
    _, splits = build_dataset(cfg)
    for split, data in splits.items():
        save_npy(features_file(out_dir, split), data.features)
        write_text(captions_file(out_dir, split), "".join(caption + "\n" for caption in data.captions))


def generate_coco_format(cfg: SyntheticParams, out_dir: Path) -> CocoFormatParams:
    """The same dataset as your own data in COCO's format, for the ``coco_format`` source.

    Writes ``captions.json`` (COCO annotations), ``dataset_coco.json`` (Karpathy's split
    layout) and ``features/<image_id>.npy``; returns the ``coco_format`` params that name them.
    Image i of a split has 5 + i % 3 captions (its own five, then its first ones again), as
    real COCO images have 5 to 7.
    """
    out_dir = Path(out_dir)
    _, splits = build_dataset(cfg)
    images, annotations, karpathy = [], [], []
    for split, data in splits.items():
        for i in range(len(data.scenes)):
            image_id = 1000 * (len(images) + 1)  # COCO ids are sparse, never row numbers
            own = data.captions[5 * i:5 * i + 5]
            for text in own + own[:i % 3]:
                annotations.append({"id": 7 * len(annotations) + 3, "image_id": image_id, "caption": text})
            images.append({"id": image_id, "file_name": f"{image_id}.jpg"})
            karpathy.append({"cocoid": image_id, "split": "val" if split == "dev" else split})
            save_npy(out_dir / "features" / f"{image_id}.npy", data.features[i])
    write_json(out_dir / "captions.json", {"images": images, "annotations": annotations})
    write_json(out_dir / "dataset_coco.json", {"images": karpathy, "dataset": "coco"})
    return CocoFormatParams(captions=[str(out_dir / "captions.json")], split_file=str(out_dir / "dataset_coco.json"),
                            features=str(out_dir / "features"))


def _streams(cfg: SyntheticParams) -> list[np.random.Generator]:
    """Independent streams for the world and each split: a split's scenes don't depend on the others' sizes."""
    return [np.random.default_rng(seq) for seq in np.random.SeedSequence(cfg.seed).spawn(1 + len(SPLITS))]


def _build_split(world: World, cfg: SyntheticParams, n_images: int, rng: np.random.Generator,
                 advance: Callable[[], None]) -> SyntheticSplit:
    """``n_images`` images; a ``hard_negative_rate`` share of them are near-twins of another one here."""
    n_twins = round(cfg.hard_negative_rate * n_images)
    # A pair's two images sit side by side, so a fold of the test split rarely separates them.
    groups = [2] * n_twins + [1] * (n_images - 2 * n_twins)
    scenes: list[Scene] = []
    edits: list[TwinEdit | None] = []
    twin_of = np.full(n_images, -1, dtype=np.int64)
    for group in rng.permutation(groups):
        scene = sample_scene(world, cfg, rng)
        if group == 1:
            scenes.append(scene)
            edits.append(None)
            continue
        twin, edit = make_twin(world, scene, rng)
        base = len(scenes) + int(rng.integers(2))  # either image of the pair may come first
        twin_of[2 * len(scenes) + 1 - base] = base
        scenes.extend([scene, twin] if base == len(scenes) else [twin, scene])
        edits.extend([edit, edit])
    features = np.empty((n_images, cfg.regions, cfg.feat_dim), dtype=np.float32)
    captions: list[str] = []
    for i, scene in enumerate(scenes):
        features[i] = render_regions(world, scene, cfg, rng)
        captions.extend(write_captions(world, scene, rng, edits[i]))
        advance()
    return SyntheticSplit(scenes, twin_of, edits, features, captions)
