"""`hsc metrics`: the rank metrics of any saved (N, 5N) similarity matrix, as JSON."""

from __future__ import annotations

from pathlib import Path

import typer


def metrics(
    sims: Path = typer.Argument(..., help="A .npy matrix of scores, images x captions (N, 5N); "
                                          "caption j belongs to image j // 5."),
    folds: int = typer.Option(1, min=1, help="Mean over this many diagonal folds (5: the COCO 1K protocol)."),
) -> None:
    """Print R@1/5/10, median and mean rank per direction and rsum, as JSON."""
    import numpy as np

    from hsc.errors import HscError
    from hsc.evaluation.ranks import fold_metrics, rank_metrics
    from hsc.evaluation.report import metrics_json

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
    values = rank_metrics(matrix, source) if folds == 1 else fold_metrics(matrix, folds, source)
    print(metrics_json(values))
