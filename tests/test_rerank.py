"""Two-stage evaluation: shortlist by pooled vectors, re-rank with the head, misses stay misses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hsc.errors import HscError
from hsc.evaluation.protocols import Protocol, run_protocols
from hsc.evaluation.rerank import evaluate_two_stage, top_k, two_stage_protocols
from hsc.evaluation.scoring import SplitEmbeddings
from hsc.loss import ContrastiveLoss, ShortlistObjective
from hsc.params import parse_params


class MatrixModel:
    """A 'head' that returns fixed scores: image i, caption j -> table[i, j] (ids carried in the encodings)."""

    training = False

    def __init__(self, table: np.ndarray) -> None:
        self.table = torch.from_numpy(table)

    def eval(self) -> None:
        pass

    def train(self, mode: bool = True) -> None:
        pass

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.table[img[:, 0, 0].long()][:, cap[:, 0, 0].long()]


def embeddings(n_images: int) -> SplitEmbeddings:
    images = torch.arange(n_images, dtype=torch.float32).view(-1, 1, 1)
    captions = torch.arange(5 * n_images, dtype=torch.float32).view(-1, 1, 1)
    return SplitEmbeddings(images, captions, torch.ones(5 * n_images, dtype=torch.int64))


def test_top_k_is_the_largest_dot_products() -> None:
    queries, gallery = torch.randn(7, 4), torch.randn(30, 4)
    expected = np.argsort(-(queries @ gallery.t()).numpy(), axis=1)[:, :10]
    assert np.array_equal(top_k(queries, gallery, 10), expected)


def test_faiss_shortlist_equals_the_matrix_product() -> None:
    pytest.importorskip("faiss")
    queries, gallery = torch.randn(7, 4), torch.randn(30, 4)
    assert np.array_equal(top_k(queries, gallery, 10, "faiss"), top_k(queries, gallery, 10))


def test_a_shortlist_as_large_as_the_gallery_gives_the_exact_metrics() -> None:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((12, 60)).astype(np.float32)
    vectors = torch.randn(12, 8), torch.randn(60, 8)
    protocols = [Protocol("full", "test"), Protocol("folds", "test", folds=3)]
    exact = run_protocols(protocols, {"test": table})
    results = two_stage_protocols(MatrixModel(table), embeddings(12), vectors, protocols, 60, cap_block=7, device="cpu")
    for two, one in zip(results, exact):
        assert two.metrics == pytest.approx(one.metrics)
        assert two.extra["gt_in_shortlist_i2t"] == two.extra["gt_in_shortlist_t2i"] == 100.0
    assert results[0].extra["pairs_scored"] == 12 * 60


def test_a_ground_truth_outside_the_shortlist_is_a_miss_not_rank_0() -> None:
    n = 20
    # The head puts every ground truth first; the shortlist vectors keep image 0 and caption 0 away from their truths.
    table = np.zeros((n, 5 * n), dtype=np.float32)
    table[np.arange(5 * n) // 5, np.arange(5 * n)] = 1.0
    img = torch.eye(n + 1)[:n]
    cap = torch.eye(n + 1)[np.arange(5 * n) // 5]
    cap[5:, n] = 0.5  # image 0 (below) prefers every other image's captions to its own
    img[0], cap[:5] = torch.eye(n + 1)[n], 0.0
    cap[0] = -torch.eye(n + 1)[n]  # caption 0 ranks image 0 last
    result = two_stage_protocols(MatrixModel(table), embeddings(n), (img, cap), [Protocol("full", "test")], 10,
                                 cap_block=16, device="cpu")[0]
    assert result.metrics["i2t_r1"] == pytest.approx(100.0 * (n - 1) / n)  # image 0: a miss at R@1, R@5 and R@10
    assert result.metrics["i2t_r10"] == pytest.approx(100.0 * (n - 1) / n)
    assert result.metrics["t2i_r10"] <= 100.0 * (5 * n - 1) / (5 * n)  # caption 0 misses too
    assert result.extra["gt_in_shortlist_i2t"] == pytest.approx(100.0 * (n - 1) / n)
    assert result.extra["pairs_scored"] < n * 5 * n


def test_rerank_k_below_10_is_refused() -> None:
    with pytest.raises(HscError, match="evaluate.rerank_k"):
        parse_params({"evaluate": {"rerank_k": 5}})


def test_shortlist_loss_adds_the_hinge_on_shortlist_vectors() -> None:
    from hsc.models.config import DataShape, ModelSpec
    from hsc.models.registry import build_model
    from hsc.loss import RankingObjective

    torch.manual_seed(0)
    model = build_model(ModelSpec.resolve("saf", DataShape(img_dim=8, regions=4, vocab_size=20),
                                          {"embed_size": 16, "text": {"word_dim": 8}, "head": {"sim_dim": 8}})).eval()
    batch = type("Batch", (), {"images": torch.randn(4, 4, 8), "tokens": torch.randint(4, 20, (4, 6)),
                               "lengths": torch.full((4,), 6)})()
    ranking = ContrastiveLoss(margin=0.2, max_violation=False)
    plain = RankingObjective(ranking)(model, batch)
    with_term = ShortlistObjective(RankingObjective(ranking), ranking, 2.0)(model, batch)
    img, cap = model.shortlist_vectors(model.encode_images(batch.images),
                                       model.encode_captions(batch.tokens, batch.lengths), batch.lengths)
    assert img.shape == (4, 16) and cap.shape == (4, 16)
    assert with_term.item() == pytest.approx(plain.item() + 2.0 * ranking(img @ cap.t()).item(), rel=1e-5)
