"""Rank metrics against a plain argsort reference, folds, curves and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from hsc.errors import HscError
from hsc.evaluation import ranks as R


def reference_ranks(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SCAN's loops with argsort; ties broken in favour of the ground truth, like ranks.py."""
    n_images, n_captions = sims.shape
    i2t = np.zeros(n_images, dtype=np.int64)
    for i in range(n_images):
        truth = np.zeros(n_captions, dtype=bool)
        truth[5 * i:5 * i + 5] = True
        order = np.lexsort((~truth, -sims[i]))  # by score descending, then ground truth first
        i2t[i] = min(int(np.where(order == c)[0][0]) for c in range(5 * i, 5 * i + 5))
    t2i = np.zeros(n_captions, dtype=np.int64)
    for j in range(n_captions):
        truth = np.arange(n_images) == j // 5
        order = np.lexsort((~truth, -sims[:, j]))
        t2i[j] = int(np.where(order == j // 5)[0][0])
    return i2t, t2i


def reference_metrics(sims: np.ndarray) -> dict[str, float]:
    i2t, t2i = reference_ranks(sims)
    out = {}
    for name, r in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * len(np.where(r < k)[0]) / len(r)
        out[f"{name}_medr"] = np.floor(np.median(r)) + 1
        out[f"{name}_meanr"] = r.mean() + 1
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return out


def random_sims(n: int, seed: int, ties: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sims = rng.standard_normal((n, 5 * n)).astype(np.float32)
    # Make ground truths score higher on average so ranks spread over small and large values.
    sims[np.arange(5 * n) // 5, np.arange(5 * n)] += 1.5
    if ties:
        sims = np.round(sims * 2) / 2  # few distinct values: many ties incl. with ground truths
    return sims


@pytest.mark.parametrize("n", [1, 2, 7, 30])
@pytest.mark.parametrize("ties", [False, True])
def test_ranks_match_argsort_reference(n: int, ties: bool) -> None:
    sims = random_sims(n, seed=n, ties=ties)
    i2t, t2i = reference_ranks(sims)
    got = R.query_ranks(sims)
    np.testing.assert_array_equal(got.i2t, i2t)
    np.testing.assert_array_equal(got.t2i, t2i)
    assert R.rank_metrics(sims) == pytest.approx(reference_metrics(sims))


def test_blocks_do_not_change_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    sims = random_sims(23, seed=1, ties=True)
    whole = R.query_ranks(sims)
    monkeypatch.setattr(R, "BLOCK_ELEMENTS", 3 * sims.shape[1])  # 3 rows, last block partial
    blocked = R.query_ranks(sims)
    np.testing.assert_array_equal(whole.i2t, blocked.i2t)
    np.testing.assert_array_equal(whole.t2i, blocked.t2i)


def test_perfect_and_keys() -> None:
    sims = np.kron(np.eye(4), np.ones((1, 5))).astype(np.float32)  # each image's own captions score 1
    metrics = R.rank_metrics(sims)
    assert tuple(metrics) == R.METRIC_KEYS
    assert metrics["i2t_r1"] == metrics["t2i_r1"] == 100.0
    assert metrics["i2t_medr"] == metrics["t2i_meanr"] == 1.0
    assert metrics["rsum"] == 600.0


def test_known_small_case() -> None:
    # 2 images: image 0's best caption ranks 1st; image 1's best own caption ranks 3rd.
    sims = np.array([
        [0.9, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5],
        [0.8, 0.7, 0.0, 0.0, 0.0, 0.6, 0.1, 0.1, 0.1, 0.1],
    ], dtype=np.float32)
    got = R.query_ranks(sims)
    assert got.i2t.tolist() == [0, 2]
    # Captions 1-4 score 0.1 with image 0 but 0.7/0.0 with image 1.
    assert got.t2i.tolist() == [0, 1, 0, 0, 0, 0, 1, 1, 1, 1]
    metrics = R.rank_metrics(sims)
    assert metrics["i2t_r1"] == 50.0 and metrics["i2t_medr"] == 2.0 and metrics["i2t_meanr"] == 2.0
    assert metrics["t2i_r1"] == 50.0 and metrics["t2i_meanr"] == 1.5


def test_fold_metrics_mean_of_diagonal_blocks_and_true_rsum() -> None:
    sims = random_sims(20, seed=3, ties=False)
    folds = [R.rank_metrics(sims[4 * i:4 * i + 4, 20 * i:20 * i + 20]) for i in range(5)]
    got = R.fold_metrics(sims, folds=5)
    for key in R.METRIC_KEYS:
        assert got[key] == pytest.approx(np.mean([f[key] for f in folds]))
    assert got["rsum"] == pytest.approx(sum(got[k] for k in R.RECALL_KEYS))
    # The original scripts' slip would print 6 x the mean i2t recall average instead.
    slip = 6 * np.mean([(f["i2t_r1"] + f["i2t_r5"] + f["i2t_r10"]) / 3 for f in folds])
    assert got["rsum"] != pytest.approx(slip)


def test_recall_curve_matches_metrics_and_caps_k() -> None:
    sims = random_sims(30, seed=4, ties=True)
    curve = R.recall_curve(sims, max_k=100)
    assert curve.k.tolist() == list(range(1, 31))
    metrics = R.rank_metrics(sims)
    for k in (1, 5, 10):
        assert curve.i2t[k - 1] == pytest.approx(metrics[f"i2t_r{k}"])
        assert curve.t2i[k - 1] == pytest.approx(metrics[f"t2i_r{k}"])
    assert curve.t2i[-1] == 100.0 and np.all(np.diff(curve.i2t) >= 0)
    folded = R.fold_curve(sims, folds=5, max_k=100)
    assert folded.k.tolist() == list(range(1, 7))


@pytest.mark.parametrize("sims, message", [
    (np.zeros((3, 14)), "is not (N images, 5N captions)"),
    (np.zeros((3,)), "is not (N images, 5N captions)"),
    (np.zeros((0, 0)), "is not (N images, 5N captions)"),
    (np.full((2, 10), np.nan), "NaN"),
    (np.full((2, 10), np.inf), "NaN"),
    (np.full((2, 10), "a"), "not numeric"),
])
def test_bad_matrices_are_user_errors(sims: np.ndarray, message: str) -> None:
    with pytest.raises(HscError, match=message.replace("(", r"\(").replace(")", r"\)")):
        R.rank_metrics(sims, source="x.npy")


def test_folds_must_divide_images() -> None:
    with pytest.raises(HscError, match="do not split into 5 equal folds"):
        R.fold_metrics(np.zeros((7, 35), dtype=np.float32), folds=5)
