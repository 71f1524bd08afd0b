"""`hsc embed`: per-item vectors of a split (pooled models' own, cross-attention models' shortlist vectors) to HDF5."""

from __future__ import annotations

from pathlib import Path

import typer


def embed(
    checkpoint: Path = typer.Option(..., help="hsc checkpoint."),
    data: Path = typer.Option(..., help="Prepared directory from `hsc prepare`."),
    split: str = typer.Option("test", help="Split to embed."),
    out: Path = typer.Option(..., help="HDF5 file: image_vectors, caption_vectors and their ids."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Write image_vectors (N, E) with image_index, and caption_vectors (C, E) with caption_index and caption_image.

    image_index is each vector's row of the split's features, caption_index its caption, and
    caption_image the image row of each caption. Written atomically.
    """
    from hsc.api import load

    retriever = load(checkpoint, data, split, device)
    retriever.save_vectors(out, checkpoint=str(checkpoint))
    print(f"{out}: {len(retriever.image_rows)} image and {len(retriever.caption_vectors)} caption vectors")
