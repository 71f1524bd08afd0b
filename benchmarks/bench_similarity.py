"""Benchmark the similarity head and a training step at the paper's sizes.

Method. (1) Head: one SAF head (E 1024, S 256, R 36) in eval mode under ``no_grad``, float32,
scores the same 128 images x 128 captions (lengths drawn uniformly from 8..16 words, about 12)
two ways: the batched :class:`~hsc.models.heads.SimilarityEncoder` and the per-caption loop of
:mod:`hsc.models.reference`. Runs alternate (batched, loop) ``--repeats`` times after one
warm-up each, and the best time of each is kept, which damps noise from other processes on
shared cores. It reports pairs/s of both, their ratio, the largest score difference, the
arithmetic rate of the batched head (its three GEMMs: word-region scores, attended contexts,
Linear(E, S) over the squared differences) and a plain 2048^3 matmul's rate as the ceiling.
(2) Training step: the full HSC model (4 region-graph blocks, 4 text attention layers, SAF) on
a batch of 128 pairs of 36 x 2048 features: forward to the 128 x 128 scores, ContrastiveLoss,
backward, gradient clipping at 2.0 and an Adam step (the trainer's own
:func:`~hsc.training.step.optimisation_step`). The step's floating-point operations are counted
in a first, eager step with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and
convolutions, forward and backward) less the products that the head's backward recomputes
(:mod:`hsc.models.fused`), so recomputation cannot inflate the rate. Then one more warm-up step
(it compiles the head under ``--compile``; its seconds are reported apart) and the mean seconds
of ``--steps`` steps; the count over that mean is the achieved GFLOP/s. The ceiling is a 2048^3
float32 matmul's rate (best of 3) measured in the same process just before the warm-up step and
again just after the last step; the larger of the two is used, so a machine busier during one
measurement than the other cannot flatter the ratio. The 1-minute load average before and after
is recorded beside them. On a CPU the same figures are also taken per CPU second of this
process (``time.process_time``) rather than per wall second: with one thread that is the
compute the process actually received, so the ratio stays fair when other processes share the
core (their cache traffic still slows both sides). ``--amp`` runs the step under autocast
(bfloat16 on a CPU, float16 with loss scaling on CUDA), against the same float32 ceiling.
``--compile`` wraps the similarity head in ``torch.compile``; measured on a CPU it ran 20.0 CPU
s/step against 21.2 to 25.7 eager, within the eager runs' spread, after a compile of about 3
CPU minutes, so the trainer does not compile (figures in the README's "Measured cost"). For a
fair figure on a shared machine pin one core and one thread:
``OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_similarity.py --no-head``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import typer
from torch.utils.flop_counter import FlopCounterMode

from hsc.atomic import write_json
from hsc.data.batches import PairBatch
from hsc.loss import ContrastiveLoss, RankingObjective
from hsc.models.config import DataShape, ModelSpec
from hsc.models.layers import l2norm
from hsc.models.reference import loop_similarity
from hsc.models.registry import build_model
from hsc.progress import track
from hsc.training.precision import grad_scaler
from hsc.training.step import optimisation_step

IMAGES = CAPTIONS = 128
REGIONS, FEAT_DIM, EMBED, SIM_DIM, VOCAB = 36, 2048, 1024, 256, 10_000
MIN_WORDS, MAX_WORDS = 8, 16


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronise(device)
    start = time.perf_counter()
    fn()
    synchronise(device)
    return time.perf_counter() - start


def head_flops(lengths: torch.Tensor, images: int) -> float:
    """Multiply-adds x 2 of the batched head's GEMMs (scores, contexts, Linear(E, S)) for all pairs."""
    words = float(lengths.sum()) * images
    return words * (2 * REGIONS * EMBED * 2 + 2 * EMBED * SIM_DIM)


def cpu_timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of ``fn()`` on a CPU."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def matmul_rate(device: torch.device) -> float:
    """GFLOP/s of a large float32 matrix product on ``device``: the ceiling for the head."""
    a = torch.randn(2048, 2048, device=device)
    a @ a
    best = min(timed(lambda: a @ a, device) for _ in range(3))
    return 2 * 2048 ** 3 / best / 1e9


def cpu_matmul_rate() -> float:
    """GFLOP/s of a 2048^3 float32 matmul per CPU second of this process (best of 3)."""
    a = torch.randn(2048, 2048)
    a @ a
    best = min(cpu_timed(lambda: a @ a)[1] for _ in range(3))
    return 2 * 2048 ** 3 / best / 1e9


def paper_config() -> ModelSpec:
    return ModelSpec.resolve("hsc", DataShape(img_dim=FEAT_DIM, regions=REGIONS, vocab_size=VOCAB),
                             {"embed_size": EMBED, "head": {"sim_dim": SIM_DIM}})


def random_captions(generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.randint(MIN_WORDS, MAX_WORDS + 1, (CAPTIONS,), generator=generator)
    tokens = torch.randint(4, VOCAB, (CAPTIONS, MAX_WORDS), generator=generator)
    tokens[torch.arange(MAX_WORDS) >= lengths[:, None]] = 0
    return tokens.to(device), lengths.to(device)


def bench_head(device: torch.device, repeats: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    head = build_model(paper_config()).sim_enc.to(device).eval()
    img = l2norm(torch.randn(IMAGES, REGIONS, EMBED, generator=generator)).to(device)
    _, lengths = random_captions(generator, device)
    cap = l2norm(torch.randn(CAPTIONS, MAX_WORDS, EMBED, generator=generator)).to(device)
    cap = cap * (torch.arange(MAX_WORDS, device=device) < lengths[:, None]).unsqueeze(2)
    with torch.no_grad():
        batched_scores, loop_scores = head(img, cap, lengths), loop_similarity(head, img, cap, lengths)
        batched, loop = [], []
        for _ in track(range(repeats), "head: batched vs loop", unit="round"):
            batched.append(timed(lambda: head(img, cap, lengths), device))
            loop.append(timed(lambda: loop_similarity(head, img, cap, lengths), device))
    pairs = IMAGES * CAPTIONS
    return {"pairs": pairs, "mean_words": float(lengths.float().mean()),
            "batched_pairs_per_s": pairs / min(batched), "loop_pairs_per_s": pairs / min(loop),
            "speedup": min(loop) / min(batched),
            "max_abs_diff": float((batched_scores - loop_scores).abs().max()),
            "batched_gflops": head_flops(lengths, IMAGES) / min(batched) / 1e9,
            "loop_gflops": head_flops(lengths, IMAGES) / min(loop) / 1e9,
            "matmul_gflops": matmul_rate(device)}


def recomputed_flops(lengths: torch.Tensor) -> float:
    """FLOPs of the (attn . regions - word) products that the fused head's backward runs again."""
    return 2.0 * IMAGES * float(lengths.sum()) * REGIONS * EMBED


def bench_train_step(device: torch.device, steps: int, amp: bool, compile_head: bool) -> dict[str, float]:
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = build_model(paper_config()).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    objective = RankingObjective(ContrastiveLoss(margin=0.2, max_violation=True))
    dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if amp else None
    scaler = grad_scaler(dtype, device)
    feats = torch.randn(IMAGES, REGIONS, FEAT_DIM, generator=generator).to(device)
    tokens, lengths = random_captions(generator, device)
    ids = torch.arange(IMAGES, device=device)
    batch = PairBatch(feats, tokens, lengths, ids, ids)

    def step() -> None:
        optimisation_step(model, objective, optimizer, scaler, 2.0, batch, autocast=dtype)

    with FlopCounterMode(display=False) as counter:  # eager, whether or not the head is compiled next
        step()
    flops = counter.get_total_flops() - recomputed_flops(lengths)
    if compile_head:
        model.sim_enc = torch.compile(model.sim_enc)
    cpu = device.type == "cpu"
    load_before, ceiling_before = os.getloadavg()[0], matmul_rate(device)
    cpu_ceiling_before = cpu_matmul_rate() if cpu else float("nan")
    first = timed(step, device)  # compiles the head under --compile
    runs = [cpu_timed(step) if cpu else (timed(step, device), float("nan"))
            for _ in track(range(steps), "training steps", unit="step")]
    ceiling_after, load_after = matmul_rate(device), os.getloadavg()[0]
    cpu_ceiling_after = cpu_matmul_rate() if cpu else float("nan")
    seconds = sum(wall for wall, _ in runs) / steps
    cpu_seconds = sum(used for _, used in runs) / steps
    ceiling, cpu_ceiling = max(ceiling_before, ceiling_after), max(cpu_ceiling_before, cpu_ceiling_after)
    return {"train_step_s": seconds, "train_steps": steps, "train_first_step_s": first,
            "amp": str(dtype).removeprefix("torch.") if dtype else "float32", "compiled_head": compile_head,
            "train_step_gflop": flops / 1e9, "train_step_gflops": flops / seconds / 1e9,
            "step_ceiling_before_gflops": ceiling_before, "step_ceiling_after_gflops": ceiling_after,
            "step_ceiling_gflops": ceiling, "load_before": load_before, "load_after": load_after,
            "train_step_cpu_s": cpu_seconds, "train_step_cpu_gflops": flops / cpu_seconds / 1e9,
            "cpu_ceiling_before_gflops": cpu_ceiling_before, "cpu_ceiling_after_gflops": cpu_ceiling_after,
            "cpu_ceiling_gflops": cpu_ceiling, "cpu_ceiling_ratio": flops / cpu_seconds / 1e9 / cpu_ceiling, "step_ceiling_ratio": flops / seconds / 1e9 / ceiling}


def main(device: str = typer.Option("cpu", help="cpu or cuda"),
         head: bool = typer.Option(True, help="also time the head alone, batched vs loop"),
         repeats: int = typer.Option(3, min=1, help="timed rounds of batched vs loop"),
         steps: int = typer.Option(2, min=1, help="timed training steps (after one warm-up)"),
         amp: bool = typer.Option(False, help="training step under autocast: bfloat16 on CPU, float16 on CUDA"),
         compile_head: bool = typer.Option(False, "--compile", help="torch.compile the similarity head"),
         out: Optional[Path] = typer.Option(None, help="also write the figures to this JSON file")) -> None:
    target = torch.device(device)
    results = {"device": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
               "threads": torch.get_num_threads()}
    if head:
        results.update(bench_head(target, repeats))
        print(f"head, {results['pairs']} pairs, {results['mean_words']:.1f} words/caption, {results['device']} "
              f"({results['threads']} threads):")
        print(f"  batched {results['batched_pairs_per_s']:,.0f} pairs/s ({results['batched_gflops']:.0f} GFLOP/s), "
              f"loop {results['loop_pairs_per_s']:,.0f} pairs/s ({results['loop_gflops']:.0f} GFLOP/s), "
              f"speedup {results['speedup']:.2f}x, max |diff| {results['max_abs_diff']:.1e}")
        print(f"  a 2048^3 float32 matmul runs at {results['matmul_gflops']:.0f} GFLOP/s here")
    results.update(bench_train_step(target, steps, amp, compile_head))
    print(f"training step (batch 128, full HSC, {results['amp']}{', compiled head' if compile_head else ''}, "
          f"{results['device']}, {results['threads']} threads): {results['train_step_s']:.2f} s/step "
          f"(first step {results['train_first_step_s']:.1f} s), {results['train_step_gflop']:.0f} GFLOP counted, "
          f"{results['train_step_gflops']:.1f} GFLOP/s = {100 * results['step_ceiling_ratio']:.0f}% of the matmul "
          f"ceiling {results['step_ceiling_gflops']:.1f} GFLOP/s (before {results['step_ceiling_before_gflops']:.1f}, "
          f"after {results['step_ceiling_after_gflops']:.1f}); load average {results['load_before']:.1f} "
          f"before, {results['load_after']:.1f} after")
    if target.type == "cpu":
        print(f"  per CPU second of this process: {results['train_step_cpu_s']:.1f} CPU s/step, "
              f"{results['train_step_cpu_gflops']:.1f} GFLOP/s = {100 * results['cpu_ceiling_ratio']:.0f}% of the "
              f"matmul's {results['cpu_ceiling_gflops']:.1f} GFLOP/s (before {results['cpu_ceiling_before_gflops']:.1f}, "
              f"after {results['cpu_ceiling_after_gflops']:.1f})")
    if out is not None:
        write_json(out, results)


if __name__ == "__main__":
    typer.run(main)
