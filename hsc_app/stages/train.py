"""DVC stage `train`: fit the model chosen in params.yaml on the prepared train split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def train(
    params: Path = typer.Option(Path("params.yaml"), help="Params file (sections model, train, evaluate)."),
    data: Path = typer.Option(..., help="Prepared directory from `hsc prepare` (train.h5, dev.h5)."),
    out: Path = typer.Option(..., help="Checkpoint directory: best.pt (best dev rsum) and last.pt (resumable)."),
    metrics: Path = typer.Option(Path("metrics/train"), help="Curves directory (train.tsv, dev.tsv, metrics.json), replaced whole when training ends."),
    init: Optional[Path] = typer.Option(None, help="Fine-tune from this hsc checkpoint (overrides train.init)."),
    restart: bool = typer.Option(False, "--restart", help="Start afresh, ignoring OUT/last.pt (e.g. a damaged one)."),
) -> None:
    """Train with the hinge loss (hardest negatives when train.max_violation), validating on dev every epoch.

    Resumes from OUT/last.pt when it was made with the same params and data; a checkpoint
    from other params is named in a warning and replaced. A damaged last.pt stops the run
    unless --restart says to start afresh. Uses CUDA with AMP when present.
    With train.nproc_per_node x train.nnodes > 1 it runs itself under torchrun (README).
    """
    import sys

    from hsc import interrupt
    from hsc.distributed import relaunch, stop, under_torchrun
    from hsc_app.params import load_stage_params
    from hsc_app.training.loop import Trainer

    settings = load_stage_params(params)
    cfg = settings.train
    if cfg.nproc_per_node * cfg.nnodes > 1 and not under_torchrun():
        args = sys.argv[1:] if sys.argv[1:2] == ["train"] else ["train", *sys.argv[1:]]  # `hsc train` or stages/train.py
        raise typer.Exit(relaunch("hsc_app.cli", args, cfg.nproc_per_node, cfg.nnodes, cfg.rdzv_endpoint))
    if init is not None:
        settings.train.init = str(init)
    try:
        trainer = Trainer(settings, data, out, metrics, restart=restart)
        interrupt.keep(f"{trainer.last_path} keeps the last finished epoch, if any, for the next run to resume from")
        result = trainer.run()
    finally:
        stop()
    if trainer.world.main:
        print(f"best dev rsum {result.best_rsum:.2f} at epoch {result.best_epoch}: {result.best_path}")


if __name__ == "__main__":
    from hsc_app.cli import run_app

    run_app(app)
