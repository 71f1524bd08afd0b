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
    metrics: Path = typer.Option(Path("metrics/train"), help="DVCLive directory for per-epoch curves."),
    init: Optional[Path] = typer.Option(None, help="Fine-tune from this hsc checkpoint (overrides train.init)."),
    restart: bool = typer.Option(False, "--restart", help="Start afresh, ignoring OUT/last.pt (e.g. a damaged one)."),
) -> None:
    """Train with the hinge loss (hardest negatives when train.max_violation), validating on dev every epoch.

    Resumes from OUT/last.pt when it was made with the same params and data; a checkpoint
    from other params is named in a warning and replaced. A damaged last.pt stops the run
    unless --restart says to start afresh. Uses CUDA with AMP when present.
    """
    from hsc import interrupt
    from hsc.params import load_params
    from hsc.training.loop import Trainer

    settings = load_params(params)
    if init is not None:
        settings.train.init = str(init)
    trainer = Trainer(settings, data, out, metrics, restart=restart)
    interrupt.keep(f"{trainer.last_path} keeps the last finished epoch, if any, for the next run to resume from")
    result = trainer.run()
    print(f"best dev rsum {result.best_rsum:.2f} at epoch {result.best_epoch}: {result.best_path}")


if __name__ == "__main__":
    from hsc.cli import run_app

    run_app(app)
