"""Benchmark HGAN's pair scoring beside hsc's SAF head at the paper's sizes.

Method. Both models are built at the paper's sizes (D 2048, R 36, E 1024; hsc's head S 256;
hgan's defaults: 8 region groups, phrases of 3 words, all three levels on) and put in eval
mode. They score the same encoded inputs under ``no_grad`` in float32: 128 images of 36
L2-normalised random regions x 128 captions of L2-normalised random words, lengths drawn
uniformly from 8..16 (about 12), zero past each length (what the encoders give). Each
model's ``similarity`` is timed, so the figures include everything done per block when a
split is scored: hsc's global pooling and SAF head; hgan's groups, phrases, global pooling,
shared projection and its three similarities. Runs alternate (hsc, hgan) ``--repeats``
times after one warm-up each and the best time of each is kept, which damps noise from
other processes on shared cores. It reports pairs/s of both and their ratio. The region
graph and text encoders are not timed: they run once per image / caption, not per pair.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer
from bench_similarity import CAPTIONS, EMBED, FEAT_DIM, IMAGES, MAX_WORDS, REGIONS, VOCAB, paper_config, \
    random_captions, timed

from hsc.atomic import write_json
from hsc.models.config import DataShape, ModelSpec
from hsc.models.layers import l2norm
from hsc.models.registry import build_model
from hsc.progress import track


def encoded_inputs(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Bi, R, E) regions, (Bc, L, E) words zero past each length, (Bc,) lengths."""
    generator = torch.Generator().manual_seed(0)
    img = l2norm(torch.randn(IMAGES, REGIONS, EMBED, generator=generator)).to(device)
    _, lengths = random_captions(generator, device)
    cap = l2norm(torch.randn(CAPTIONS, MAX_WORDS, EMBED, generator=generator)).to(device)
    return img, cap * (torch.arange(MAX_WORDS, device=device) < lengths[:, None]).unsqueeze(2), lengths


def main(device: str = typer.Option("cpu", help="cpu or cuda"),
         repeats: int = typer.Option(3, min=1, help="timed rounds of hsc vs hgan"),
         out: Optional[Path] = typer.Option(None, help="also write the figures to this JSON file")) -> None:
    target = torch.device(device)
    torch.manual_seed(0)
    models = {"hsc": build_model(paper_config()),
              "hgan": build_model(ModelSpec.resolve("hgan", DataShape(FEAT_DIM, REGIONS, VOCAB),
                                                    {"embed_size": EMBED}))}
    img, cap, lengths = encoded_inputs(target)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model.to(target).eval().similarity(img, cap, lengths)  # warm-up
        for _ in track(range(repeats), "scoring: hsc vs hgan", unit="round"):
            for name, model in models.items():
                times[name].append(timed(lambda: model.similarity(img, cap, lengths), target))
    pairs = IMAGES * CAPTIONS
    results = {"device": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
               "threads": torch.get_num_threads(), "pairs": pairs, "mean_words": float(lengths.float().mean()),
               **{f"{name}_pairs_per_s": pairs / min(spent) for name, spent in times.items()},
               "hgan_over_hsc": min(times["hsc"]) / min(times["hgan"])}
    print(f"scoring {pairs} pairs, {results['mean_words']:.1f} words/caption, R {REGIONS}, E {EMBED}, "
          f"{results['device']} ({results['threads']} threads):")
    print(f"  hsc (SAF head) {results['hsc_pairs_per_s']:,.0f} pairs/s, hgan {results['hgan_pairs_per_s']:,.0f} "
          f"pairs/s: hgan {results['hgan_over_hsc']:.1f}x hsc's rate")
    if out is not None:
        write_json(out, results)


if __name__ == "__main__":
    typer.run(main)
