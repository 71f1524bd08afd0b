"""The ``hsc`` command: the four pipeline stages plus tools.

Each stage lives in ``stages/<name>.py`` as one Typer command (DVC runs it through this
entry point); the tools live in ``hsc/tools/``. Modules are imported here, but each keeps
its heavy imports (torch, h5py) inside the command so ``hsc --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from hsc.errors import HscError
from hsc.tools import embed, import_checkpoint, metrics, preset, rerank_sweep, search
from stages import download, evaluate, prepare, train

app = typer.Typer(
    help="HSC image-text retrieval: the DVC pipeline stages and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("download")(download.download)
app.command("prepare")(prepare.prepare)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("metrics")(metrics.metrics)
app.command("import")(import_checkpoint.import_checkpoint)
app.command("preset")(preset.preset)
app.command("search")(search.search)
app.command("embed")(embed.embed)
app.command("rerank-sweep")(rerank_sweep.rerank_sweep)


def run_app(typer_app: typer.Typer) -> None:
    """Run a Typer app; a user error becomes one ``error:`` line and exit status 2."""
    # Line-buffered so progress lines reach logs (DVC, CI) as they happen, not at exit.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        typer_app()  # standalone: click reports usage errors (exit 2) and handles --help itself
    except HscError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # outside click's own handling (which exits 130 itself)
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
