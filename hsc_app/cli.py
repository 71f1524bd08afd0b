"""The ``hsc`` command: the four pipeline stages plus tools.

Each stage lives in ``hsc_app/stages/<name>.py`` as one Typer command (DVC runs it through this
entry point); the tools live in ``hsc_app/tools/``. Modules are imported here, but each keeps
its heavy imports (torch, h5py) inside the command so ``hsc --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from hsc import interrupt
from hsc.errors import HscError
from hsc_app.stages import download, evaluate, prepare, train
from hsc_app.tools import embed, import_checkpoint, metrics, preset, rerank_sweep, search

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
    except (KeyboardInterrupt, SystemExit) as exc:
        # Typer turns Ctrl-C inside a command into a silent SystemExit(130); say what stopped.
        if not _from_ctrl_c(exc):
            raise
        print(interrupt.message(_command_name(typer_app)), file=sys.stderr)
        raise SystemExit(130) from None


def _from_ctrl_c(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt or was raised while handling one."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _command_name(typer_app: typer.Typer) -> str:
    """``hsc <command>`` as typed, or the script's name for a single-command stage app."""
    names = {info.name or info.callback.__name__ for info in typer_app.registered_commands if info.callback}
    command = next((arg for arg in sys.argv[1:] if arg in names), None)
    return f"hsc {command}" if command else Path(sys.argv[0]).name


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
