"""Extended positives on MS-COCO 5K: ECCV Caption (mAP@R, R-Precision, R@1) and CxC (R@1/5/10).

COCO's 5K test split has many false negatives; the ``eccv-caption`` package (optional extra
``hsc[eccv]``) ships the corrected positives, keyed by COCO image ids and caption annotation
ids, and scores each query's ranked ids. They apply only to a split holding every one of the
package's 25,000 test captions by their COCO ids. Ranked lists are cut at :data:`TOP_K`
(the most positives any query has is 48) and break exact ties by column order.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

TOP_K = 100
ABSENT_NOTE = "note: eccv_caption and cxc skipped; pip install 'hsc[eccv]' to score COCO 5K's extended positives"


def eccv_metrics_class():
    """The package's ``Metrics`` class, or None when ``eccv-caption`` is not installed."""
    try:
        from eccv_caption import Metrics
    except ImportError:
        return None
    return Metrics


def covers_coco_5k(caption_ids: np.ndarray, coco_test_ids: np.ndarray) -> bool:
    """Whether the split holds every caption of the package's COCO 5K test set."""
    return bool(np.isin(coco_test_ids, caption_ids).all())


def ranked_ids(sims: np.ndarray, ids: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Per row of ``sims``, the ids of its ``k`` best-scoring columns, best first."""
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
    return ids[np.take_along_axis(top, order, axis=1)]


def extended_metrics(metric: Any, sims: np.ndarray, image_ids: np.ndarray,
                     caption_ids: np.ndarray) -> Optional[dict[str, dict[str, float]]]:
    """``{"eccv_caption": {...}, "cxc": {...}}`` in percent, or None when the split is not COCO 5K.

    ``metric`` is an ``eccv_caption.Metrics()``; ``image_ids`` and ``caption_ids`` name the
    rows and columns of ``sims``.
    """
    if not covers_coco_5k(caption_ids, metric.coco_ids):
        return None
    i2t = dict(zip(image_ids.tolist(), ranked_ids(sims, caption_ids).tolist()))
    t2i = dict(zip(caption_ids.tolist(), ranked_ids(np.ascontiguousarray(sims.T), image_ids).tolist()))
    scores = metric.compute_all_metrics(i2t, t2i, target_metrics=("eccv_r1", "eccv_map_at_r", "eccv_rprecision",
                                                                  "cxc_recalls"), Ks=(1, 5, 10), verbose=False)
    out: dict[str, dict[str, float]] = {"eccv_caption": {}, "cxc": {}}
    for key, name, protocol in (("eccv_map_at_r", "map_at_r", "eccv_caption"),
                                ("eccv_rprecision", "rprecision", "eccv_caption"),
                                ("eccv_r1", "r1", "eccv_caption"),
                                ("cxc_r1", "r1", "cxc"), ("cxc_r5", "r5", "cxc"), ("cxc_r10", "r10", "cxc")):
        for direction in ("i2t", "t2i"):
            out[protocol][f"{direction}_{name}"] = round(100.0 * float(scores[key][direction]), 2)
    return out
