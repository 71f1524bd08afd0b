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
    import h5py
    import numpy as np

    from hsc.api import load
    from hsc.atomic import atomic_path

    retriever = load(checkpoint, data, split, device)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5["image_vectors"] = retriever.image_vectors.numpy()
        h5["image_index"] = retriever.image_rows
        h5["caption_vectors"] = retriever.caption_vectors.numpy()
        h5["caption_index"] = np.arange(len(retriever.caption_vectors))
        h5["caption_image"] = np.asarray(retriever.reader.caption_image)
        h5.attrs["model"] = retriever.model.spec.name
        h5.attrs["vectors"] = "pooled" if retriever.model.granularity == "pooled" else "shortlist"
        h5.attrs["checkpoint"] = str(checkpoint)
    print(f"{out}: {len(retriever.image_rows)} image and {len(retriever.caption_vectors)} caption vectors")
