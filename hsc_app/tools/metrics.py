"""`hsc metrics`: the rank metrics of any saved (N, C) similarity matrix, as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def metrics(
    sims: Path = typer.Argument(..., help="A .npy matrix of scores, images x captions (N, C); without "
                                          "--caption-image C is 5N and caption j belongs to image j // 5."),
    folds: int = typer.Option(1, min=1, help="Mean over this many folds of images (5: the COCO 1K protocol)."),
    caption_image: Optional[Path] = typer.Option(None, help="The image row of each caption column: a .npy of C "
                                                           "integers, or the <split>_ranks.npz `hsc evaluate "
                                                           "--save-sims` wrote beside the matrix."),
) -> None:
    """Print R@1/5/10, median and mean rank per direction and rsum, as JSON."""
    import numpy as np

    from hsc.errors import HscError
    from hsc.evaluation.ranks import fold_metrics, rank_metrics
    from hsc.evaluation.report import load_caption_image, metrics_json

    if sims.suffix != ".npy":
        raise HscError(f"{sims}: expected a .npy file (numpy.save) of an images x captions score matrix")
    try:
        matrix = np.load(sims, allow_pickle=False)
    except FileNotFoundError:
        raise HscError(f"{sims}: no such file") from None
    except (OSError, ValueError, EOFError):
        matrix = None
    if not isinstance(matrix, np.ndarray):
        raise HscError(f"{sims}: not a readable .npy array; write scores with numpy.save(path, matrix)")
    source = str(sims)
    mapping = None if caption_image is None else load_caption_image(caption_image)
    values = (rank_metrics(matrix, source, mapping) if folds == 1
              else fold_metrics(matrix, folds, source, mapping))
    print(metrics_json(values))

