"""Benchmark two-stage against exact evaluation on a COCO-5K-shaped split (paper sizes, random weights).

Method. A cross-attention model (hsc, E 1024, S 256, R 36, SAF head) with random weights;
its encodings are drawn at random (L2-normalised regions and words, captions 8..16 words),
since encoding costs the same in both protocols. Exact: every image x caption pair scored by
:func:`~hsc.evaluation.scoring.score_matrix`; at 125M pairs this is measured on the first
``--exact-images`` images against every caption and PROJECTED linearly to all images. Two-stage
at ``--k``: the shortlist vectors, the shortlist both ways and the union of candidate pairs are
measured on the whole split; re-ranking the pairs with the head is measured on the pairs of
the first ``--rerank-images`` images (0: all, in full) and, when a subset, PROJECTED linearly by
pair count. The shortlist alone is timed by the matrix product and, when installed, faiss's
exact IndexFlatIP. float32 on CPU; the machine's load adds noise, so compare ratios.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch
import typer

from hsc.atomic import write_json
from hsc.errors import HscError
from hsc.evaluation.rerank import Scope, score_pairs, shortlist, shortlist_vectors
from hsc.evaluation.scoring import SplitEmbeddings, score_matrix
from hsc.models.config import DataShape, ModelSpec
from hsc.models.layers import l2norm
from hsc.models.registry import build_model

REGIONS, FEAT_DIM, EMBED, SIM_DIM, VOCAB = 36, 2048, 1024, 256, 10_000
MIN_WORDS, MAX_WORDS = 8, 16


def main(images: int = typer.Option(5000, help="Images (captions: 5 per image); COCO 5K: 5000."),
         k: int = typer.Option(32, help="Shortlist size."),
         exact_images: int = typer.Option(8, help="Images scored against every caption to project the exact time."),
         rerank_images: int = typer.Option(0, help="Re-rank only these images' candidate pairs and project (0: all)."),
         out: Optional[Path] = typer.Option(None, help="Also write the figures to this JSON file.")) -> None:
    torch.manual_seed(0)
    spec = ModelSpec.resolve("hsc", DataShape(img_dim=FEAT_DIM, regions=REGIONS, vocab_size=VOCAB),
                             {"embed_size": EMBED, "head": {"sim_dim": SIM_DIM}})
    model = build_model(spec).eval()
    captions = 5 * images
    lengths = torch.randint(MIN_WORDS, MAX_WORDS + 1, (captions,))
    words = l2norm(torch.randn(captions, MAX_WORDS, EMBED))
    words *= (torch.arange(MAX_WORDS)[None, :] < lengths[:, None]).unsqueeze(2)
    emb = SplitEmbeddings(l2norm(torch.randn(images, REGIONS, EMBED)), words, lengths)

    subset = SplitEmbeddings(emb.images[:exact_images], emb.captions, emb.lengths)
    start = time.perf_counter()
    score_matrix(model, subset, img_block=128, cap_block=256, device="cpu")
    exact_measured = time.perf_counter() - start
    exact_projected = exact_measured * images / exact_images

    start = time.perf_counter()
    vectors = shortlist_vectors(model, emb, batch=640, device="cpu")
    vector_seconds = time.perf_counter() - start
    shortlist_seconds = {}
    for index in ("matmul", "faiss"):
        try:
            start = time.perf_counter()
            candidates = shortlist(*vectors, Scope(0, images), k, index)
            keys = candidates.pair_keys(captions)
            shortlist_seconds[index] = round(time.perf_counter() - start, 2)
        except HscError as exc:  # faiss not installed: reported, not fatal
            shortlist_seconds[index] = f"skipped ({exc})"
    sample = keys if not rerank_images else keys[keys // captions < rerank_images]
    start = time.perf_counter()
    score_pairs(model, emb, sample, cap_block=256, device="cpu")
    rerank_measured = time.perf_counter() - start
    rerank_projected = rerank_measured * len(keys) / len(sample)
    two_stage = vector_seconds + shortlist_seconds["matmul"] + rerank_projected
    report = {"images": images, "captions": captions, "k": k, "pairs_all": images * captions,
              "exact_measured_images": exact_images, "exact_measured_seconds": round(exact_measured, 1),
              "exact_projected_seconds": round(exact_projected, 1),
              "rerank_measured_pairs": int(len(sample)), "rerank_measured_seconds": round(rerank_measured, 1),
              "two_stage_seconds": round(two_stage, 1), "two_stage_projected": bool(rerank_images),
              "two_stage_pairs_scored": int(len(keys)),
              "shortlist_vectors_seconds": round(vector_seconds, 1), "shortlist_seconds": shortlist_seconds,
              "speedup": round(exact_projected / two_stage, 1), "threads": torch.get_num_threads()}
    if out:
        write_json(out, report)
    print(report)


if __name__ == "__main__":
    typer.run(main)
