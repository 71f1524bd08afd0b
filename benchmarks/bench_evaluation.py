"""Benchmark of the evaluation stage: rank metrics, pair scoring rate, and the synthetic test split.

Method:
1. Rank metrics: ``rank_metrics`` and the 5-fold ``fold_metrics`` on a random float32 matrix
   of COCO 5K's size (5,000 images x 25,000 captions); wall time of one call each.
2. Scoring rate: a randomly initialised model at the paper's sizes (D 2048, R 36, E 1024,
   S 256, the ``hsc`` variant) encodes random features and random ~12-word captions, then
   ``score_matrix`` scores a subset of the Flickr30K-sized problem (default 200 images x
   their 1,000 captions, blocks from params.yaml) after one warm-up block. The rate in pairs/s is
   projected onto the full protocols: F30K 1K (1,000 x 5,000 = 5M pairs) and COCO 5K
   (5,000 x 25,000 = 125M pairs). Scoring cost does not depend on the weights' values.
3. Pooled scoring: ``pooled_score_matrix`` of random unit vectors shaped like COCO 5K at
   E = 2048 (5,000 images x 25,000 captions, how a pooled family such as ``hje`` scores a
   split: blocked matrix products); wall time of one call after a small warm-up.
4. If ``data/prepared/synthetic/test.h5`` exists: encode and score it with a random model
   of params.yaml's model section, timing each phase.

Run: ``python benchmarks/bench_evaluation.py [--device cpu|cuda] [--images 200]``.
Threads: torch's default (all cores of the machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from hsc.devices import resolve_device
from hsc.evaluation.ranks import fold_metrics, rank_metrics
from hsc.evaluation.scoring import encode_split, pooled_score_matrix, score_matrix
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc_app.params import Params, load_params

F30K_PAIRS = 1_000 * 5_000
COCO_5K_PAIRS = 5_000 * 25_000


class ArrayReader:
    """An in-memory split with SplitReader's reading interface."""

    def __init__(self, feats: np.ndarray, captions: list[np.ndarray]) -> None:
        self.path = "random split"
        self.feats = feats
        self.captions = captions
        self.n_images, self.regions, self.feat_dim = feats.shape
        self.n_captions = len(captions)
        self.caption_image = np.arange(self.n_captions) // 5

    def features(self, indices: np.ndarray) -> np.ndarray:
        return self.feats[indices]

    def caption(self, j: int) -> np.ndarray:
        return self.captions[j]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_ranks() -> None:
    sims = np.random.default_rng(0).standard_normal((5_000, 25_000), dtype=np.float32)
    for name, fn in (("rank_metrics", rank_metrics), ("fold_metrics (5 folds)", fold_metrics)):
        start = time.perf_counter()
        fn(sims)
        print(f"[1] {name} on 5,000 x 25,000: {time.perf_counter() - start:.2f} s")


def random_split(n_images: int, n_captions: int, cfg: DataShape, seed: int) -> ArrayReader:
    rng = np.random.default_rng(seed)
    feats = rng.random((n_images, cfg.regions, cfg.img_dim), dtype=np.float32)
    # <start> + ~12 words + <end>, as in Flickr30K / COCO captions
    captions = [np.concatenate([[1], rng.integers(4, cfg.vocab_size, rng.integers(8, 17)), [2]]).astype(np.int64)
                for _ in range(n_captions)]
    return ArrayReader(feats, captions)


def bench_scoring(device: torch.device, n_images: int, img_block: int, cap_block: int) -> None:
    torch.manual_seed(0)
    cfg = DataShape(img_dim=2048, regions=36, vocab_size=8_000)
    model = build_model(ModelSpec.resolve("hsc", cfg)).to(device)
    n_captions = 5 * n_images
    emb = encode_split(model, random_split(n_images, n_captions, cfg, seed=0), batch_size=128, device=device)
    warm = type(emb)(emb.images[:2], emb.captions[:8], emb.lengths[:8], emb.granularity)
    score_matrix(model, warm, img_block=2, cap_block=8, device=device)
    start = time.perf_counter()
    score_matrix(model, emb, img_block=img_block, cap_block=cap_block, device=device)
    sync(device)
    seconds = time.perf_counter() - start
    rate = n_images * n_captions / seconds
    print(f"[2] scoring {n_images} x {n_captions} pairs at paper sizes on {device}: {seconds:.1f} s, "
          f"{rate:,.0f} pairs/s (blocks {img_block} x {cap_block})")
    print(f"    projected F30K 1K (5M pairs): {F30K_PAIRS / rate / 60:.1f} min; "
          f"COCO 5K (125M pairs): {COCO_5K_PAIRS / rate / 3600:.2f} h")


def bench_pooled(device: torch.device, n_images: int = 5_000, embed: int = 2_048) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(n_images, embed, generator=generator), dim=1)
    captions = torch.nn.functional.normalize(torch.randn(5 * n_images, embed, generator=generator), dim=1)
    pooled_score_matrix(images[:64], captions[:320], device=device)
    start = time.perf_counter()
    sims = pooled_score_matrix(images, captions, device=device)
    sync(device)
    seconds = time.perf_counter() - start
    print(f"[3] pooled scoring {sims.shape[0]:,} x {sims.shape[1]:,} at E {embed} on {device}: {seconds:.2f} s "
          f"({2 * sims.size * embed / seconds / 1e9:.0f} GFLOP/s)")


def bench_synthetic(device: torch.device, params: Params, split_path: Path) -> None:
    from hsc.data.store import SplitReader

    reader = SplitReader(split_path)
    torch.manual_seed(0)
    shape = DataShape(img_dim=reader.feat_dim, regions=reader.regions, vocab_size=reader.vocab_size)
    spec = ModelSpec.resolve(params.model.name, shape, params.model.model_dump())
    model = build_model(spec).to(device)
    start = time.perf_counter()
    emb = encode_split(model, reader, batch_size=params.evaluate.encode_batch, device=device)
    sync(device)
    encoded = time.perf_counter()
    sims = score_matrix(model, emb, img_block=params.evaluate.img_block, cap_block=params.evaluate.cap_block,
                        device=device)
    scored = time.perf_counter()
    rank_metrics(sims)
    print(f"[4] synthetic test ({sims.shape[0]} x {sims.shape[1]}, {spec.name}, E {spec.config.embed_size}) on {device}: "
          f"encode {encoded - start:.2f} s, score {scored - encoded:.2f} s "
          f"({sims.size / (scored - encoded):,.0f} pairs/s), metrics {time.perf_counter() - scored:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--images", type=int, default=200, help="images in the timed subset (x 5 captions)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--synthetic", type=Path, default=Path("data/prepared/synthetic/test.h5"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    params = load_params(args.params)
    blocks = params.evaluate
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    bench_ranks()
    bench_scoring(device, args.images, blocks.img_block, blocks.cap_block)
    bench_pooled(device)
    if args.synthetic.is_file():
        bench_synthetic(device, params, args.synthetic)
    else:
        print(f"[4] skipped: {args.synthetic} is absent (run `dvc repro prepare`)")


if __name__ == "__main__":
    main()
