"""Evaluation outputs: metrics JSON, DVC recall-curve TSVs, saved scores and a rich table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from hsc.atomic import atomic_directory, atomic_path, save_npy, write_json
from hsc.errors import HscError
from hsc.evaluation.protocols import ProtocolResult
from hsc.evaluation.ranks import METRIC_KEYS, five_per_image, query_ranks


def rounded(metrics: dict[str, float]) -> dict[str, float]:
    """Every metric as a float with 2 decimals (ranks stay floats: a 5-fold medr can be 1.4)."""
    return {key: round(float(metrics[key]), 2) for key in METRIC_KEYS}


def write_eval_json(path: Path, results: Sequence[ProtocolResult],
                    extra: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """``{protocol: {i2t_r1: ..., rsum: ...}}`` (plus the two-stage figures, if any) and ``extra``
    protocols (ECCV Caption, CxC), written atomically."""
    protocols = {result.protocol.name: {**rounded(result.metrics), **result.extra} for result in results}
    write_json(path, {**protocols, **(extra or {})})


def write_headline_json(path: Path, results: Sequence[ProtocolResult]) -> None:
    """``{"test_rsum": {protocol: rsum}}``: the figures `dvc exp show` lists before the details (dvc.yaml)."""
    write_json(path, {"test_rsum": {result.protocol.name: rounded(result.metrics)["rsum"] for result in results}})


def write_recall_tsvs(plots_dir: Path, results: Sequence[ProtocolResult]) -> None:
    """One DVC plot per protocol, ``<protocol>.tsv`` with columns ``k i2t t2i``.

    The directory is replaced whole, so curves of protocols no longer scored (say, after a
    switch of dataset) do not linger beside the new ones.
    """
    with atomic_directory(plots_dir) as staging:
        for result in results:
            curve = result.curve
            lines = ["k\ti2t\tt2i"] + [f"{k}\t{i2t:.2f}\t{t2i:.2f}"
                                       for k, i2t, t2i in zip(curve.k, curve.i2t, curve.t2i)]
            (staging / f"{result.protocol.name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def save_split_scores(sims_dir: Path, split: str, sims: np.ndarray, caption_image: np.ndarray | None = None,
                      image_ids: np.ndarray | None = None, caption_ids: np.ndarray | None = None) -> None:
    """``<split>_sims.npy`` and ``<split>_ranks.npz``: the per-query ranks ``i2t`` and ``t2i``,
    the relevance ``caption_image`` (column -> row; ``hsc metrics --caption-image`` reads it) and
    the ``image_ids`` / ``caption_ids`` of the rows and columns (indices when not given)."""
    save_npy(sims_dir / f"{split}_sims.npy", sims)
    ranks = query_ranks(sims, f"{split} scores", caption_image)
    n_images, n_captions = sims.shape
    # Through a handle: np.savez would append .npz to the temporary name.
    with atomic_path(sims_dir / f"{split}_ranks.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, i2t=ranks.i2t, t2i=ranks.t2i,
                 caption_image=five_per_image(n_captions) if caption_image is None else caption_image,
                 image_ids=np.arange(n_images) if image_ids is None else image_ids,
                 caption_ids=np.arange(n_captions) if caption_ids is None else caption_ids)


def load_caption_image(path: Path) -> np.ndarray:
    """The caption -> image array of a .npy file, or the ``caption_image`` of a ranks .npz that
    :func:`save_split_scores` wrote."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise HscError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError):
        raise HscError(f"{path}: not a readable .npy or .npz file") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "caption_image" not in loaded:
                raise HscError(f"{path}: no 'caption_image' array; give the <split>_ranks.npz saved beside the scores")
            return loaded["caption_image"]
    return loaded


def metrics_json(metrics: dict[str, float]) -> str:
    """The 11 metrics as indented JSON text (what ``hsc metrics`` prints)."""
    return json.dumps(rounded(metrics), indent=2)


def print_table(results: Sequence[ProtocolResult], console: Console | None = None) -> None:
    """One column per protocol, one row per metric (11 rows fit a terminal; 11 columns would not)."""
    table = Table(title="retrieval metrics (i2t: image->text, t2i: text->image)")
    table.add_column("metric")
    for result in results:
        table.add_column(result.protocol.name, justify="right")
    values = [rounded(result.metrics) for result in results]
    for key in METRIC_KEYS:
        table.add_row(key, *(f"{v[key]:.2f}" for v in values))
    (console or Console()).print(table)
