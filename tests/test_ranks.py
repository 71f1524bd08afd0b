"""Rank metrics against a plain argsort reference, folds, curves and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from hsc.errors import HscError
from hsc.evaluation import ranks as R


def reference_ranks(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SCAN's loops with argsort; ties broken against the ground truth (pessimistic), like ranks.py."""
    n_images, n_captions = sims.shape
    i2t = np.zeros(n_images, dtype=np.int64)
    for i in range(n_images):
        truth = np.zeros(n_captions, dtype=bool)
        truth[5 * i:5 * i + 5] = True
        order = np.lexsort((truth, -sims[i]))  # by score descending, then ground truth last
        i2t[i] = min(int(np.where(order == c)[0][0]) for c in range(5 * i, 5 * i + 5))
    t2i = np.zeros(n_captions, dtype=np.int64)
    for j in range(n_captions):
        truth = np.arange(n_images) == j // 5
        order = np.lexsort((truth, -sims[:, j]))
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


def brute_force_ranks(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rule itself, pair by pair: count the wrong candidates scoring >= the ground truth."""
    n_images, n_captions = sims.shape
    i2t = [min(sum(sims[i, w] >= sims[i, c] for w in range(n_captions) if w // 5 != i)
               for c in range(5 * i, 5 * i + 5)) for i in range(n_images)]
    t2i = [sum(sims[w, j] >= sims[j // 5, j] for w in range(n_images) if w != j // 5) for j in range(n_captions)]
    return np.array(i2t), np.array(t2i)


def test_partial_ties_match_the_brute_force_rule() -> None:
    sims = random_sims(9, seed=5, ties=True)
    assert len(np.unique(sims)) < 20  # many ties, including with ground truths
    i2t, t2i = brute_force_ranks(sims)
    got = R.query_ranks(sims)
    np.testing.assert_array_equal(got.i2t, i2t)
    np.testing.assert_array_equal(got.t2i, t2i)


def test_tied_wrong_candidates_rank_above_but_tied_own_captions_do_not() -> None:
    sims = np.array([
        # image 0: own captions tie at 0.5 with each other and with wrong caption 5
        [0.5, 0.5, 0.5, 0.1, 0.1, 0.5, 0.3, 0.2, 0.2, 0.2],
        [0.3, 0.0, 0.0, 0.0, 0.0, 0.3, 0.3, 0.3, 0.9, 0.3],
    ], dtype=np.float32)
    got = R.query_ranks(sims)
    assert got.i2t.tolist() == [1, 0]
    # Caption 5: image 0 scores 0.5 > 0.3; caption 6: image 0 ties its own image at 0.3.
    assert got.t2i.tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("n, expected", [
    # 10 images: every ground truth ranks last, 45 wrong captions above an image's best and 9 wrong
    # images above a caption's; R@10 of t2i is 100 only because 10 images all fit in the top 10.
    (10, {"i2t_r1": 0.0, "i2t_r5": 0.0, "i2t_r10": 0.0, "i2t_medr": 46.0, "i2t_meanr": 46.0,
          "t2i_r1": 0.0, "t2i_r5": 0.0, "t2i_r10": 100.0, "t2i_medr": 10.0, "t2i_meanr": 10.0, "rsum": 100.0}),
    (20, {"i2t_r1": 0.0, "i2t_r5": 0.0, "i2t_r10": 0.0, "i2t_medr": 96.0, "i2t_meanr": 96.0,
          "t2i_r1": 0.0, "t2i_r5": 0.0, "t2i_r10": 0.0, "t2i_medr": 20.0, "t2i_meanr": 20.0, "rsum": 0.0}),
])
def test_constant_matrix_gets_the_worst_ranks(n: int, expected: dict[str, float]) -> None:
    assert R.rank_metrics(np.full((n, 5 * n), 0.25, dtype=np.float32)) == expected


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


def brute_force_mapped(sims: np.ndarray, caption_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pessimistic rule pair by pair, for any caption -> image mapping."""
    n_images, n_captions = sims.shape
    i2t = [min(sum(sims[i, w] >= sims[i, c] for w in range(n_captions) if caption_image[w] != i)
               for c in np.flatnonzero(caption_image == i)) for i in range(n_images)]
    t2i = [sum(sims[w, j] >= sims[caption_image[j], j] for w in range(n_images) if w != caption_image[j])
           for j in range(n_captions)]
    return np.array(i2t), np.array(t2i)


@pytest.mark.parametrize("ties", [False, True])
def test_five_to_seven_captions_per_image_match_the_brute_force_rule(ties: bool) -> None:
    rng = np.random.default_rng(11)
    counts = rng.integers(5, 8, size=10)
    caption_image = rng.permutation(np.repeat(np.arange(10), counts))  # not in image order either
    sims = rng.standard_normal((10, len(caption_image))).astype(np.float32)
    sims[caption_image, np.arange(len(caption_image))] += 1.0
    if ties:
        sims = np.round(sims * 2) / 2
    got = R.query_ranks(sims, caption_image=caption_image)
    i2t, t2i = brute_force_mapped(sims, caption_image)
    np.testing.assert_array_equal(got.i2t, i2t)
    np.testing.assert_array_equal(got.t2i, t2i)


def test_folds_select_each_fold_s_captions_by_the_mapping() -> None:
    rng = np.random.default_rng(12)
    caption_image = np.repeat(np.arange(10), rng.integers(5, 8, size=10))
    shuffled = rng.permutation(len(caption_image))
    sims = rng.standard_normal((10, len(caption_image))).astype(np.float32)
    in_order = R.fold_metrics(sims, folds=5, caption_image=caption_image)
    expected = [R.rank_metrics(sims[2 * i:2 * i + 2, (caption_image // 2) == i],
                               caption_image=caption_image[(caption_image // 2) == i] - 2 * i) for i in range(5)]
    assert in_order["rsum"] == pytest.approx(sum(m["rsum"] for m in expected) / 5)
    # the same captions in another column order give the same folds
    assert R.fold_metrics(sims[:, shuffled], folds=5, caption_image=caption_image[shuffled]) == pytest.approx(in_order)


def test_a_mapping_that_does_not_fit_the_matrix_is_a_user_error() -> None:
    with pytest.raises(HscError, match=r"x.npy: shape \(2, 6\) does not match \(5,\)"):
        R.rank_metrics(np.zeros((2, 6)), "x.npy", caption_image=np.zeros(5, dtype=np.int64))
    with pytest.raises(HscError, match="x.npy: image row 1 has no caption"):
        R.rank_metrics(np.zeros((2, 6)), "x.npy", caption_image=np.zeros(6, dtype=np.int64))
