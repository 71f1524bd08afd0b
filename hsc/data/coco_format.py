"""Your own data in COCO's format -> the raw layout the prepare stage reads.

Inputs (params section ``coco_format``): COCO caption files (``{"images", "annotations"}``,
read with pycocotools' COCO API), a split file (Karpathy's ``dataset_*.json``, whose images
carry ``cocoid`` or ``imgid`` and a ``split`` of train / restval / val / test, or a JSON of
image-id lists ``{"train": [...], "dev": [...], "test": [...]}``) and region features per
image (a directory of ``<image_id>.npy`` (R, D), or one ``.h5`` / ``.npz`` keyed by image id).

Output per split, in ``out``: ``{split}_ims.npy`` (N, R, D) float32, ``{split}_caps.txt`` (one
caption a line, grouped by image in split order), ``{split}_caption_image.npy`` (C,) the image
row of each caption, and ``{split}_image_ids.npy`` / ``{split}_caption_ids.npy`` (COCO ids).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hsc.atomic import atomic_path, save_npy, write_text
from hsc.data.config import CocoFormatParams
from hsc.data.precomp import captions_file, features_file
from hsc.errors import HscError

SPLITS = ("train", "dev", "test")
# Karpathy's split names -> ours: restval is the 30K of val that COCO training adds.
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
LIST_SPLITS = {"train": "train", "dev": "dev", "val": "dev", "test": "test"}
ID_FILES = ("caption_image", "image_ids", "caption_ids")


def id_file(raw: Path, split: str, kind: str) -> Path:
    """``{split}_{kind}.npy``, one of :data:`ID_FILES`."""
    return raw / f"{split}_{kind}.npy"


def convert(settings: CocoFormatParams, out: Path) -> dict[str, tuple[int, int]]:
    """Write the raw layout of every split into ``out``; returns {split: (images, captions)}."""
    if not settings.captions or settings.split_file is None or settings.features is None:
        raise HscError("params coco_format: set captions (a list of COCO caption JSON files), split_file and "
                       "features for dataset coco_format")
    captions = read_captions([Path(p) for p in settings.captions])
    splits = read_split_file(Path(settings.split_file))
    sizes = {}
    with open_features(Path(settings.features)) as features:
        for split in SPLITS:
            sizes[split] = _write_split(out, split, splits[split], captions, features, Path(settings.split_file))
    return sizes


def read_captions(paths: list[Path]) -> dict[int, list[tuple[int, str]]]:
    """Image id -> its (annotation id, caption) pairs in annotation-id order, from every file."""
    from pycocotools.coco import COCO

    by_image: dict[int, list[tuple[int, str]]] = {}
    for path in paths:
        if not path.is_file():
            raise HscError(f"{path}: no such caption file (params coco_format.captions)")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress lines
                coco = COCO(str(path))
        except (ValueError, UnicodeDecodeError) as exc:
            raise HscError(f"{path}: not a COCO caption JSON file ({exc})") from None
        except (KeyError, TypeError, AssertionError) as exc:
            raise HscError(f"{path}: not a COCO caption file (needs 'images' and 'annotations'; {exc!r})") from None
        if not isinstance(coco.dataset.get("annotations"), list):
            raise HscError(f"{path}: not a COCO caption file (no 'annotations' list)")
        for ann_id, ann in coco.anns.items():
            text = ann.get("caption")
            if not isinstance(text, str) or not text.strip():
                raise HscError(f"{path}: annotation id {ann_id} has no caption text")
            if "image_id" not in ann:
                raise HscError(f"{path}: annotation id {ann_id} has no image_id")
            # one line per caption: newlines inside a caption would split it in the raw file
            by_image.setdefault(int(ann["image_id"]), []).append((int(ann_id), " ".join(text.split())))
    for pairs in by_image.values():
        pairs.sort()
    return by_image


def read_split_file(path: Path) -> dict[str, list[int]]:
    """Image ids of train, dev and test, in file order, from either split-file layout."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HscError(f"{path}: no such split file (params coco_format.split_file)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HscError(f"{path}: not a JSON file ({exc})") from None
    splits: dict[str, list[int]] = {split: [] for split in SPLITS}
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        for number, image in enumerate(data["images"]):
            image_id = image.get("cocoid", image.get("imgid")) if isinstance(image, dict) else None
            split = KARPATHY_SPLITS.get(image.get("split")) if isinstance(image, dict) else None
            if image_id is None or split is None:
                raise HscError(f"{path}: images[{number}] needs 'cocoid' (or 'imgid') and a 'split' of "
                               f"{', '.join(KARPATHY_SPLITS)}")
            splits[split].append(int(image_id))
    elif isinstance(data, dict) and set(data) <= set(LIST_SPLITS):
        for key, ids in data.items():
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise HscError(f"{path}: key '{key}' must be a list of integer image ids")
            splits[LIST_SPLITS[key]].extend(ids)
    else:
        raise HscError(f"{path}: expected Karpathy's {{\"images\": [...]}} or image-id lists "
                       f"{{\"train\": [...], \"dev\": [...], \"test\": [...]}}")
    for split, ids in splits.items():
        if not ids:
            raise HscError(f"{path}: split '{split}' has no images")
        if len(set(ids)) != len(ids):
            raise HscError(f"{path}: split '{split}' lists an image id twice")
    return splits


@contextlib.contextmanager
def open_features(path: Path) -> Iterator[Any]:
    """Image id -> (R, D) array, looked up lazily; a missing id names the file and the id."""
    if path.is_dir():
        yield _DirectoryFeatures(path)
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        try:
            handle = h5py.File(path, "r")
        except OSError:
            raise HscError(f"{path}: not an HDF5 file (params coco_format.features)") from None
        with handle:
            yield _KeyedFeatures(path, handle)
    elif path.suffix == ".npz":
        try:
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise HscError(f"{path}: not a readable .npz file ({exc})") from None
        with archive:
            yield _KeyedFeatures(path, archive)
    else:
        raise HscError(f"{path}: no such directory, .h5 or .npz file (params coco_format.features)")


class _DirectoryFeatures:
    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self, image_id: int) -> str:
        return str(self.root / f"{image_id}.npy")

    def __getitem__(self, image_id: int) -> np.ndarray:
        file = self.root / f"{image_id}.npy"
        if not file.is_file():
            raise HscError(f"{self.root}: no features for image id {image_id} (expected {file.name})")
        try:
            return np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise HscError(f"{file}: not a readable .npy array ({exc})") from None


class _KeyedFeatures:
    def __init__(self, path: Path, store: Any) -> None:
        self.path, self.store = path, store

    def describe(self, image_id: int) -> str:
        return f"{self.path}: key '{image_id}'"

    def __getitem__(self, image_id: int) -> np.ndarray:
        key = str(image_id)
        if key not in self.store:
            raise HscError(f"{self.path}: no key '{key}' (features of image id {image_id})")
        return np.asarray(self.store[key])


def _write_split(out: Path, split: str, image_ids: list[int], captions: dict[int, list[tuple[int, str]]],
                 features: Any, split_path: Path) -> tuple[int, int]:
    lines: list[str] = []
    caption_ids: list[int] = []
    caption_image: list[int] = []
    for row, image_id in enumerate(image_ids):
        pairs = captions.get(image_id)
        if not pairs:
            raise HscError(f"{split_path}: image id {image_id} ({split}) has no caption in the caption files")
        for ann_id, text in pairs:
            caption_ids.append(ann_id)
            caption_image.append(row)
            lines.append(text)
    first = _checked(features, image_ids[0], None)
    # Written row by row into a memory-mapped file: COCO's train features exceed memory.
    with atomic_path(features_file(out, split)) as tmp:
        stack = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(image_ids), *first.shape))
        for row, image_id in enumerate(image_ids):
            stack[row] = first if row == 0 else _checked(features, image_id, first.shape)
        stack.flush()
        del stack
    write_text(captions_file(out, split), "".join(line + "\n" for line in lines))
    for kind, values in zip(ID_FILES, (caption_image, image_ids, caption_ids)):
        save_npy(id_file(out, split, kind), np.asarray(values, dtype=np.int64))
    return len(image_ids), len(lines)


def _checked(features: Any, image_id: int, shape: tuple[int, ...] | None) -> np.ndarray:
    """Image ``image_id``'s features, checked to be finite (R, D) floats of the first image's shape."""
    array = np.asarray(features[image_id])
    where = features.describe(image_id)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise HscError(f"{where}: expected a 2-D float array (regions, dims), got {array.dtype} {array.shape}")
    if shape is not None and array.shape != shape:
        raise HscError(f"{where}: shape {array.shape}, but the first image has {shape}; "
                       f"every image needs the same regions x dims")
    if not np.isfinite(array).all():
        raise HscError(f"{where}: holds NaN or inf")
    return array
