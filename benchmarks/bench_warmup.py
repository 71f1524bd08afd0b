"""Experiment: does hardest-negative training from a random start collapse, and does the warm-up help?

Method: a synthetic dataset in SCAN's layout (default 3,000 training images, 250 dev, the
embedded default's small model sizes), trained with hardest negatives (``max_violation``),
batch 32, lr 2e-4, seed 0, on the CPU, once per ``train.max_violation_warmup`` value
(default 0 and 1). Per epoch it prints the share of steps whose loss sits at the
constant-score floor (within ``FLOOR_RTOL``), the mean loss over the floor, and the dev rsum;
a run the trainer stops as collapsed prints that line instead.

Run: ``python benchmarks/bench_warmup.py [--images 3000] [--epochs 2] [--warmups 0 1]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hsc.data.prepare import prepare_dataset
from hsc.data.synthetic import generate
from hsc.errors import HscError
from hsc.training.collapse import FLOOR_RTOL
from hsc_app.params import Params
from hsc_app.training.loop import Trainer


def experiment_params(images: int, epochs: int, warmup: int) -> Params:
    return Params.model_validate({
        "dataset": "synthetic",
        "synthetic": {"n_train": images, "n_dev": 250, "n_test": 250},
        "model": {"embed_size": 128, "word_dim": 64, "sim_dim": 32},
        "train": {"epochs": epochs, "batch_size": 32, "lr": 2e-4, "lr_update": 20, "max_violation": True,
                  "max_violation_warmup": warmup, "device": "cpu", "seed": 0},
        "evaluate": {"device": "cpu"},  # the trainer prints each epoch's dev rsum
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--warmups", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_warmup_"))
    base = experiment_params(args.images, args.epochs, 0)
    generate(base.synthetic, root / "raw")
    prepare_dataset(root / "raw", root / "prepared", base.dataset, base.prepare)
    for warmup in args.warmups:
        steps: list[tuple[float, float]] = []  # (loss, floor) of every step
        trainer = Trainer(experiment_params(args.images, args.epochs, warmup), root / "prepared",
                          root / f"ckpt{warmup}", root / f"metrics{warmup}")
        per_epoch = -(-trainer.train_reader.n_captions // 32)
        real_step = trainer._step

        def recording_step(batch, real_step=real_step, trainer=trainer, steps=steps):
            loss = real_step(batch)
            steps.append((loss, trainer.loss_fn.constant_floor(len(batch.lengths))))
            return loss

        trainer._step = recording_step
        start = time.perf_counter()
        try:
            trainer.run()
            outcome = "completed"
        except HscError as exc:
            outcome = f"stopped: {exc}"
        print(f"warmup {warmup}: {outcome} ({time.perf_counter() - start:.0f} s)")
        for epoch in range(-(-len(steps) // per_epoch)):
            rows = steps[epoch * per_epoch:(epoch + 1) * per_epoch]
            at_floor = sum(abs(loss - floor) <= FLOOR_RTOL * floor for loss, floor in rows)
            excess = sum(loss / floor - 1 for loss, floor in rows) / len(rows)
            print(f"  epoch {epoch + 1}: {at_floor}/{len(rows)} steps at the floor, mean loss/floor - 1 = {excess:.4f}")


if __name__ == "__main__":
    main()
