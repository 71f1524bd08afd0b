"""Two-stage evaluation: shortlist by pooled vectors, re-rank with the head, misses stay misses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hsc.errors import HscError
from hsc.evaluation.protocols import Protocol, run_protocols
from hsc.evaluation.rerank import top_k, two_stage_protocols
from hsc.evaluation.scoring import SplitEmbeddings
from hsc.loss import ContrastiveLoss, ShortlistObjective
from hsc_app.params import parse_params


class MatrixModel:
    """A 'head' that returns fixed scores: image i, caption j -> table[i, j] (ids carried in the encodings)."""

    training = False

    def __init__(self, table: np.ndarray) -> None:
        self.table = torch.from_numpy(table)

    def eval(self) -> None:
        """A fixed table has no train/eval modes: scoring calls this, nothing changes."""

    def train(self, mode: bool = True) -> None:
        """As :meth:`eval`."""

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


def truth_first_table(n: int) -> np.ndarray:
    """Head scores that put every ground truth first: 1 on image j // 5, caption j; 0 elsewhere."""
    table = np.zeros((n, 5 * n), dtype=np.float32)
    table[np.arange(5 * n) // 5, np.arange(5 * n)] = 1.0
    return table


def test_a_ground_truth_outside_the_shortlist_is_a_miss_not_rank_0() -> None:
    n = 20
    # The shortlist vectors keep image 0 and its captions away from each other in both directions.
    img = torch.eye(n + 1)[:n]
    cap = torch.eye(n + 1)[np.arange(5 * n) // 5]
    cap[5:, n] = 0.5  # image 0 (below) prefers every other image's captions to its own
    img[0] = torch.eye(n + 1)[n]
    cap[:5] = -torch.eye(n + 1)[n]  # image 0's captions rank it last
    result = two_stage_protocols(MatrixModel(truth_first_table(n)), embeddings(n), (img, cap),
                                 [Protocol("full", "test")], 10, cap_block=16, device="cpu")[0]
    assert result.metrics["i2t_r1"] == pytest.approx(100.0 * (n - 1) / n)  # image 0: a miss at R@1, R@5 and R@10
    assert result.metrics["i2t_r10"] == pytest.approx(100.0 * (n - 1) / n)
    assert result.metrics["t2i_r10"] == pytest.approx(100.0 * (5 * n - 5) / (5 * n))  # its 5 captions miss too
    assert result.extra["gt_in_shortlist_i2t"] == result.extra["gt_in_top_k_i2t"] == pytest.approx(100.0 * (n - 1) / n)
    assert result.extra["pairs_scored"] < n * 5 * n


def test_a_caption_ranks_the_images_whose_shortlist_held_it() -> None:
    n = 20
    # Caption 0's vector prefers images 1..10 to its own, but image 0's own top 10 holds caption 0:
    # the pair is scored for the image, so the caption finds its image at no extra cost.
    img = torch.eye(n)
    cap = torch.eye(n)[np.arange(5 * n) // 5]
    cap[0] = 0.5 * torch.eye(n)[0] + torch.eye(n)[1:11].sum(0)
    result = two_stage_protocols(MatrixModel(truth_first_table(n)), embeddings(n), (img, cap),
                                 [Protocol("full", "test")], 10, cap_block=16, device="cpu")[0]
    assert result.extra["gt_in_top_k_t2i"] == pytest.approx(100.0 * (5 * n - 1) / (5 * n))
    assert result.extra["gt_in_shortlist_t2i"] == 100.0
    assert result.metrics["t2i_r1"] == 100.0
    shortlisted = {(i, j) for i, row in enumerate(top_k(img, cap, 10)) for j in row}
    shortlisted |= {(i, j) for j, row in enumerate(top_k(cap, img, 10)) for i in row}
    assert result.extra["pairs_scored"] == len(shortlisted)  # the union of both directions' top 10, nothing more


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
                               "lengths": torch.full((4,), 6), "phrases": None})()
    ranking = ContrastiveLoss(margin=0.2, max_violation=False)
    plain = RankingObjective(ranking)(model, batch)
    with_term = ShortlistObjective(RankingObjective(ranking), ranking, 2.0)(model, batch)
    img, cap = model.shortlist_vectors(model.encode_images(batch.images),
                                       model.encode_captions(batch.tokens, batch.lengths), batch.lengths)
    assert img.shape == (4, 16) and cap.shape == (4, 16)
    assert with_term.item() == pytest.approx(plain.item() + 2.0 * ranking(img @ cap.t()).item(), rel=1e-5)


def test_evaluate_stage_records_the_two_stage_figures(tmp_path: Path) -> None:
    from test_evaluate_stage import make_checkpoint, prepare_split, run_evaluate

    data = tmp_path / "prepared"
    prepare_split(data, "synthetic", "test", n_images=15)
    checkpoint = make_checkpoint(tmp_path / "best.pt", seed=0)
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  device: cpu\n  encode_batch: 7\n  rerank_k: 10\n")
    result = run_evaluate(tmp_path, params, data, [checkpoint])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    full, folds = report["synthetic_full"], report["synthetic_5fold"]
    assert full["rerank_k"] == 10 and 0 < full["pairs_scored"] < 15 * 75
    assert folds["pairs_scored"] == 5 * 3 * 15  # 3 images x 15 captions per fold: all of them
    assert folds["gt_in_shortlist_i2t"] == folds["gt_in_shortlist_t2i"] == 100.0
    (tmp_path / "exact.yaml").write_text("evaluate:\n  device: cpu\n")
    exact = run_evaluate(tmp_path, tmp_path / "exact.yaml", data, [checkpoint])
    assert exact.exit_code == 0, exact.output
    assert json.loads((tmp_path / "metrics" / "eval.json").read_text())["synthetic_5fold"]["rsum"] == folds["rsum"]
    params.write_text("evaluate:\n  device: cpu\n  rerank_k: 10\n")
    ensemble = run_evaluate(tmp_path, params, data, [checkpoint, checkpoint])
    assert isinstance(ensemble.exception, HscError) and "re-ranking scores one checkpoint" in str(ensemble.exception)


def test_evaluate_stage_with_a_faiss_index_equals_the_matrix_product(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    from test_evaluate_stage import make_checkpoint, prepare_split, run_evaluate

    data = tmp_path / "prepared"
    prepare_split(data, "synthetic", "test", n_images=15)
    checkpoint = make_checkpoint(tmp_path / "best.pt", seed=0)
    reports = {}
    for index in ("matmul", "faiss"):
        params = tmp_path / f"{index}.yaml"
        params.write_text(f"evaluate:\n  device: cpu\n  rerank_k: 10\n  shortlist_index: {index}\n")
        result = run_evaluate(tmp_path, params, data, [checkpoint])
        assert result.exit_code == 0, result.output
        reports[index] = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert reports["faiss"] == reports["matmul"]
    assert reports["faiss"]["synthetic_full"]["pairs_scored"] < 15 * 75  # a real shortlist, not every pair


def test_rerank_sweep_writes_the_plot_tsv(tmp_path: Path, tiny_prepared: Path) -> None:
    from test_api import tiny_checkpoint
    from typer.testing import CliRunner

    from hsc_app.cli import app

    checkpoint = tiny_checkpoint(tmp_path / "best.pt", tiny_prepared)
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  device: cpu\n")
    out = tmp_path / "rerank.tsv"
    result = CliRunner().invoke(app, ["rerank-sweep", "--checkpoint", str(checkpoint), "--data", str(tiny_prepared),
                                      "--params", str(params), "--ks", "10,100", "--out", str(out)])
    assert result.exit_code == 0, result.output
    header, k10, k100 = [line.split("\t") for line in out.read_text().splitlines()]
    assert header[:3] == ["k", "rsum", "exact_rsum"]
    assert k100[1] == k100[2]  # 100 candidates: all 100 captions of the 20 images, and every image
    assert int(k10[5]) < 20 * 100
    bad = CliRunner().invoke(app, ["rerank-sweep", "--checkpoint", str(checkpoint), "--data", str(tiny_prepared),
                                   "--params", str(params), "--ks", "4"])
    assert isinstance(bad.exception, HscError) and "at least 10" in str(bad.exception)


def test_faiss_asked_for_but_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(HscError, match=r"faiss is not installed; pip install 'hsc\[faiss\]'"):
        top_k(torch.randn(3, 4), torch.randn(20, 4), 10, "faiss")


def test_pooled_shortlister_and_pooled_models_under_rerank(tmp_path: Path) -> None:
    from test_evaluate_stage import FEAT_DIM, REGIONS, VOCAB_SHA, VOCAB_SIZE, make_checkpoint, prepare_split, run_evaluate

    from hsc.checkpoint import save_checkpoint
    from hsc.models.config import DataShape, ModelSpec
    from hsc.models.registry import build_model

    data = tmp_path / "prepared"
    prepare_split(data, "synthetic", "test", n_images=15)
    model = make_checkpoint(tmp_path / "best.pt", seed=0)
    torch.manual_seed(1)
    pooled = tmp_path / "hje.pt"
    save_checkpoint(pooled, build_model(ModelSpec.resolve("hje", DataShape(FEAT_DIM, REGIONS, VOCAB_SIZE),
                                                          {"embed_size": 16, "text": {"word_dim": 8},
                                                           "joint": {"local_dim": 8}})), vocab_sha256=VOCAB_SHA)
    params = tmp_path / "params.yaml"
    report = tmp_path / "metrics" / "eval.json"
    params.write_text(f"evaluate:\n  device: cpu\n  rerank_k: 10\n  shortlist_checkpoint: {pooled}\n")
    assert run_evaluate(tmp_path, params, data, [model]).exit_code == 0
    assert json.loads(report.read_text())["synthetic_full"]["rerank_k"] == 10
    # A pooled model's own scores are exact: rerank_k leaves its metrics (and eval.json) as without it.
    assert run_evaluate(tmp_path, params, data, [pooled]).exit_code == 0
    two_stage = json.loads(report.read_text())
    params.write_text("evaluate:\n  device: cpu\n")
    assert run_evaluate(tmp_path, params, data, [pooled]).exit_code == 0
    assert json.loads(report.read_text()) == two_stage


def test_two_stage_refuses_splits_without_five_captions_per_image() -> None:
    from types import SimpleNamespace

    from hsc_app.stages.evaluate import _check_five_per_image

    readers = {"test": SimpleNamespace(path="data/prepared/own/test.h5")}
    _check_five_per_image(readers, {"test": np.arange(10) // 5})  # SCAN's layout passes
    with pytest.raises(HscError, match=r"test.h5: evaluate.rerank_k needs 5 captions per image"):
        _check_five_per_image(readers, {"test": np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])})
