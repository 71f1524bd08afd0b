"""A training step at the synthetic default's sizes, float32 against bfloat16 autocast on this CPU.

Method. The ``hsc`` model at the embedded default's sizes (E 128, S 32, word dim 64, 16 regions
of 256 features, a 300-word vocabulary; captions of 6 to 12 words) on one batch of 128 pairs:
forward, the hinge loss (sum over negatives, margin 0.2), backward, clipping at 2.0 and an Adam
step, through the trainer's own :func:`~hsc.training.step.optimisation_step`. Each precision
gets a fresh model from the same seed and one warm-up step; then the two alternate for
``--rounds`` rounds of ``--steps`` steps each and the best round of each is kept, which damps
noise from other processes on shared cores. Times are per CPU second of this process
(``time.process_time``), so with one thread (``OMP_NUM_THREADS=1``) they are the compute the
step received. It also says whether the CPU multiplies bfloat16 in hardware: without
AVX512-BF16 or AMX, autocast converts to float32 and back around every product.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import torch
import typer

from hsc.data.batches import PairBatch
from hsc.loss import ContrastiveLoss, RankingObjective
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc.training.precision import grad_scaler, native_cpu_bfloat16
from hsc.training.step import optimisation_step

PAIRS, REGIONS, FEAT_DIM, VOCAB, MIN_WORDS, MAX_WORDS = 128, 16, 256, 300, 6, 12
SIZES = {"embed_size": 128, "text": {"word_dim": 64}, "head": {"sim_dim": 32}}


def step_function(dtype: Optional[torch.dtype]) -> Callable[[], None]:
    """One optimisation step of a fresh seeded model on a fixed random batch, under ``dtype`` autocast (None: float32)."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model(ModelSpec.resolve("hsc", DataShape(img_dim=FEAT_DIM, regions=REGIONS, vocab_size=VOCAB),
                                          SIZES)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    objective = RankingObjective(ContrastiveLoss(margin=0.2, max_violation=False))
    lengths = torch.randint(MIN_WORDS, MAX_WORDS + 1, (PAIRS,), generator=generator)
    tokens = torch.randint(4, VOCAB, (PAIRS, MAX_WORDS), generator=generator)
    tokens[torch.arange(MAX_WORDS) >= lengths[:, None]] = 0
    ids = torch.arange(PAIRS)
    batch = PairBatch(torch.randn(PAIRS, REGIONS, FEAT_DIM, generator=generator), tokens, lengths, ids, ids)
    scaler = grad_scaler(dtype, torch.device("cpu"))
    return lambda: optimisation_step(model, objective, optimizer, scaler, 2.0, batch, autocast=dtype)


def cpu_seconds(step: Callable[[], None], steps: int) -> float:
    start = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - start) / steps


def main(rounds: int = typer.Option(3, min=1, help="alternating timed rounds"),
         steps: int = typer.Option(3, min=1, help="steps per round")) -> None:
    precisions = {"float32": None, "bfloat16": torch.bfloat16}
    runs = {name: step_function(dtype) for name, dtype in precisions.items()}
    for step in runs.values():
        step()  # warm-up
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, step in runs.items():
            best[name] = min(best[name], cpu_seconds(step, steps))
    print(f"training step at the synthetic default's sizes, batch {PAIRS}, {torch.get_num_threads()} thread(s); "
          f"bfloat16 in hardware: {'yes' if native_cpu_bfloat16() else 'no (emulated)'}")
    for name, seconds in best.items():
        print(f"  {name}: {seconds:.3f} CPU s/step (best of {rounds} rounds of {steps})")
    print(f"  bfloat16 / float32: {best['bfloat16'] / best['float32']:.2f}x")


if __name__ == "__main__":
    typer.run(main)
