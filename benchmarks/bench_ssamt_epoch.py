"""Benchmark the CPU time of one ssamt training epoch on a prepared split, to size the model for 2 CPU cores.

Method. ssamt is built from ``--params`` (its ``model`` section, name forced to ssamt, plus
``--set`` overrides such as ``ssamt.heads=4``) on the split's shape, in training mode, with the
objective the trainer uses (hinge loss; plus ``train.phrase_loss`` when > 0). One thread
(``torch.set_num_threads(1)``). The split's first ``--steps`` + 1 batches of
``train.batch_size`` captions (with their parsed phrases) are collated once; one optimisation
step warms up, then ``--steps`` steps are timed in **process CPU time**
(``time.process_time``), not wall time, so other jobs on shared cores inflate the figure
little. Reported: CPU seconds per step and per epoch (steps per epoch = captions / batch
size), training only: validation adds about a tenth.

Run: ``python benchmarks/bench_ssamt_epoch.py --data data/prepared/synthetic --params params.yaml
[--set ssamt.heads=4] [--steps 5]`` (the split needs ``prepare.phrases: true``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import torch
import typer

from hsc.data.batches import PairDataset, collate_pairs
from hsc.data.store import SplitReader
from hsc.loss import ContrastiveLoss
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc_app.params import load_params
from hsc.training.phrases import phrase_objective
from hsc.training.step import optimisation_step


def overlay_with(model: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """params.yaml's model overlay with ``section.key=value`` assignments (integers) applied."""
    for assignment in assignments:
        path, value = assignment.split("=")
        *sections, key = path.split(".")
        node = model
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = int(value)
    return model


def main(data: Path = typer.Option(Path("data/prepared/synthetic")), params: Path = typer.Option(Path("params.yaml")),
         set_: Optional[list[str]] = typer.Option(None, "--set"), steps: int = typer.Option(5, min=1)) -> None:
    torch.set_num_threads(1)
    settings = load_params(params)
    reader = SplitReader(data / "train.h5")
    overlay = overlay_with(settings.model.model_dump(exclude={"name"}), set_ or [])
    torch.manual_seed(0)
    spec = ModelSpec.resolve("ssamt", DataShape(reader.feat_dim, reader.regions, reader.vocab_size), overlay)
    model = build_model(spec).train()
    train = settings.train
    objective = model.objective(ContrastiveLoss(margin=train.margin, max_violation=False), reader, data / "vocab.json")
    objective = phrase_objective(objective, reader, train.phrase_loss, train.margin)
    dataset = PairDataset(reader)
    size = train.batch_size
    batches = [collate_pairs([dataset[j] for j in range(start, start + size)])
               for start in range(0, size * (steps + 1), size)]
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    optimisation_step(model, objective, optimizer, scaler, train.grad_clip, batches[0])
    started = time.process_time()
    for batch in batches[1:]:
        optimisation_step(model, objective, optimizer, scaler, train.grad_clip, batch)
    per_step = (time.process_time() - started) / steps
    config = spec.config.ssamt
    print(f"ssamt heads {config.heads}, attn_dim {config.attn_dim}, embed {spec.config.embed_size}, "
          f"phrase_loss {train.phrase_loss}: {per_step:.2f} CPU s/step, "
          f"{per_step * reader.n_captions / size:.0f} CPU s/epoch (training only)")


if __name__ == "__main__":
    typer.run(main)
