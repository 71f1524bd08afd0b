"""DVC stage `prepare`: SCAN-layout raw files -> vocab.json + one HDF5 file per split."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

TRACKED_VOCAB_DIR = Path("data/vocab")  # a dependency of the prepare stage in dvc.yaml


@app.command()
def prepare(
    params: Path = typer.Option(Path("params.yaml"), help="Params file (keys dataset and prepare)."),
    raw: Path = typer.Option(..., help="SCAN-layout directory from `hsc download`"),
    out: Path = typer.Option(..., help="directory for vocab.json and <split>.h5"),
) -> None:
    """Tokenise captions, build or load the vocabulary, and write vocab.json and <split>.h5.

    The vocabulary is built from the train and dev captions (words seen at least
    prepare.min_count times) or loaded from a released SCAN vocabulary (prepare.vocab).
    OUT is replaced only once every file is complete.
    """
    from rich.console import Console

    from hsc.data.prepare import prepare_dataset
    from hsc_app.params import load_stage_params

    settings = load_stage_params(params)
    console = Console()
    vocab = settings.prepare.vocab
    if vocab != "build" and not Path(vocab).resolve().is_relative_to(TRACKED_VOCAB_DIR.resolve()):
        console.print(f"[yellow]warning:[/] prepare.vocab {vocab} is outside {TRACKED_VOCAB_DIR}/, which dvc.yaml "
                      f"tracks: `dvc repro` will not re-run prepare when that file changes; copy it there")
    summaries, vocab_size = prepare_dataset(raw, out, settings.dataset, settings.prepare)
    console.print(f"{settings.dataset}: vocabulary of {vocab_size:,} words -> {out}")
    for s in summaries:
        console.print(f"  {s.split:8s} {s.images:9,d} images {s.captions:10,d} captions  "
                      f"{100 * s.unknown_rate:5.2f}% unknown words")


if __name__ == "__main__":
    from hsc_app.cli import run_app

    run_app(app)
