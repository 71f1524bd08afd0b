"""`hsc search`: ask a trained model for the split's images matching a text, or captions matching an image."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def search(
    query: Optional[str] = typer.Argument(None, help="Free text, e.g. \"a red car on a table\"."),
    checkpoint: Path = typer.Option(..., help="hsc checkpoint."),
    data: Path = typer.Option(..., help="Prepared directory from `hsc prepare` (vocab.json, <split>.h5)."),
    split: str = typer.Option("test", help="Split whose images and captions are searched."),
    image: Optional[int] = typer.Option(None, help="Instead of a text: the top captions of this image of the split."),
    top: int = typer.Option(5, min=1, help="Results shown."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Top images of the split for a text query, or top captions for --image N, in a table.

    The split's encodings are cached beside the checkpoint on first use. Words the
    vocabulary lacks are named: the model reads them as <unk>.
    """
    from rich.console import Console
    from rich.table import Table

    from hsc.api import load
    from hsc.errors import HscError

    if (query is None) == (image is None):
        raise HscError("hsc search: give a text query or --image N (one of them)")
    retriever = load(checkpoint, data, split, device)
    console = Console()
    if image is not None:
        if not 0 <= image < len(retriever.image_rows):
            raise HscError(f"{retriever.reader.path}: --image {image} is outside 0..{len(retriever.image_rows) - 1}")
        hits, title = retriever.search_image(image, top), f"captions for image {image}"
    else:
        unknown = retriever.unknown_words(query)
        if unknown:
            console.print(f"unknown words (not in {data / 'vocab.json'}, read as <unk>): {', '.join(unknown)}")
        hits, title = retriever.search(query, top), f"images for \"{query}\""
    table = Table(title=title)
    for column in ("rank", "caption" if image is not None else "image", "score", "text"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), str(hit.index), f"{hit.score:.3f}", "\n".join(hit.texts))
    console.print(table)
