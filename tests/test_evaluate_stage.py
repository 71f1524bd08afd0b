"""The evaluate stage end to end on tiny prepared splits and tiny checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hsc.checkpoint import save_checkpoint
from hsc.errors import HscError
from hsc.evaluation.ranks import METRIC_KEYS, fold_metrics, rank_metrics
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc_app.stages.evaluate import app
from factories import random_captions, write_h5_split

VOCAB_SHA = "a" * 64
REGIONS, FEAT_DIM, VOCAB_SIZE = 4, 8, 20


def prepare_split(data: Path, dataset: str, split: str, n_images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    captions = random_captions(rng, 5 * n_images, VOCAB_SIZE)
    feats = rng.standard_normal((n_images, REGIONS, FEAT_DIM)).astype(np.float32)
    write_h5_split(data / f"{split}.h5", feats, captions, dataset=dataset, vocab_sha256=VOCAB_SHA, vocab_size=VOCAB_SIZE)


def make_checkpoint(path: Path, seed: int, vocab_sha256: str = VOCAB_SHA) -> Path:
    torch.manual_seed(seed)
    cfg = ModelSpec.resolve("hsc", DataShape(img_dim=FEAT_DIM, regions=REGIONS, vocab_size=VOCAB_SIZE),
                            {"embed_size": 16, "image": {"graph_blocks": 1}, "text": {"word_dim": 8, "attn_layers": 1},
                             "head": {"sim_dim": 8}})
    save_checkpoint(path, build_model(cfg), vocab_sha256=vocab_sha256)
    return path


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("evaluate:\n  device: cpu\n  encode_batch: 7\n  img_block: 3\n  cap_block: 11\n")
    return path


def run_evaluate(tmp_path: Path, params: Path, data: Path, checkpoints: list[Path], *extra: str):
    args = ["--params", str(params), "--data", str(data), "--out", str(tmp_path / "metrics" / "eval.json"),
            "--plots", str(tmp_path / "metrics" / "recall"), "--sims-dir", str(tmp_path / "sims"), *extra]
    for checkpoint in checkpoints:
        args += ["--checkpoint", str(checkpoint)]
    return CliRunner().invoke(app, args)


def test_synthetic_metrics_plots_and_saved_scores(tmp_path: Path, params_file: Path) -> None:
    data = tmp_path / "prepared"
    prepare_split(data, "synthetic", "test", n_images=10)
    checkpoint = make_checkpoint(tmp_path / "best.pt", seed=0)
    (tmp_path / "metrics" / "recall").mkdir(parents=True)
    (tmp_path / "metrics" / "recall" / "coco_5k.tsv").write_text("k\ti2t\tt2i\n")  # from another dataset
    result = run_evaluate(tmp_path, params_file, data, [checkpoint], "--save-sims")
    assert result.exit_code == 0, result.output
    assert "synthetic_5fold" in result.output  # the rich table

    report = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert list(report) == ["synthetic_5fold", "synthetic_full"]
    headline = json.loads((tmp_path / "metrics" / "headline.json").read_text())
    assert headline == {"test_rsum": {protocol: report[protocol]["rsum"] for protocol in report}}
    assert all(tuple(sorted(m)) == tuple(sorted(METRIC_KEYS)) for m in report.values())
    sims = np.load(tmp_path / "sims" / "test_sims.npy")
    assert sims.shape == (10, 50) and sims.dtype == np.float32
    full, folds = rank_metrics(sims), fold_metrics(sims, 5)
    assert report["synthetic_full"] == {key: pytest.approx(full[key], abs=0.005) for key in METRIC_KEYS}
    assert report["synthetic_5fold"] == {key: pytest.approx(folds[key], abs=0.005) for key in METRIC_KEYS}
    ranks = np.load(tmp_path / "sims" / "test_ranks.npz")
    assert ranks["i2t"].shape == (10,) and ranks["t2i"].shape == (50,)

    tsv = (tmp_path / "metrics" / "recall" / "synthetic_full.tsv").read_text().splitlines()
    assert tsv[0] == "k\ti2t\tt2i" and len(tsv) == 1 + 10 and tsv[-1].split("\t")[::2] == ["10", "100.00"]
    assert len((tmp_path / "metrics" / "recall" / "synthetic_5fold.tsv").read_text().splitlines()) == 1 + 2
    assert sorted(p.name for p in (tmp_path / "metrics" / "recall").iterdir()) == ["synthetic_5fold.tsv",
                                                                                   "synthetic_full.tsv"]


def test_ensemble_is_the_mean_of_the_models_scores(tmp_path: Path, params_file: Path) -> None:
    data = tmp_path / "prepared"
    prepare_split(data, "f30k_precomp", "test", n_images=6)
    first, second = make_checkpoint(tmp_path / "a.pt", seed=1), make_checkpoint(tmp_path / "b.pt", seed=2)
    scores = []
    for checkpoints in ([first], [second], [first, second]):
        result = run_evaluate(tmp_path, params_file, data, checkpoints, "--save-sims")
        assert result.exit_code == 0, result.output
        scores.append(np.load(tmp_path / "sims" / "test_sims.npy"))
    assert not np.allclose(scores[0], scores[1])
    np.testing.assert_allclose(scores[2], (scores[0] + scores[1]) / 2, rtol=1e-6)
    assert list(json.loads((tmp_path / "metrics" / "eval.json").read_text())) == ["f30k_1k"]


def test_coco_scores_testall_once_for_5k_and_1k(tmp_path: Path, params_file: Path) -> None:
    data = tmp_path / "prepared"
    prepare_split(data, "coco_precomp", "test", n_images=2)
    prepare_split(data, "coco_precomp", "testall", n_images=10, seed=1)
    result = run_evaluate(tmp_path, params_file, data, [make_checkpoint(tmp_path / "m.pt", seed=0)], "--save-sims")
    assert result.exit_code == 0, result.output
    assert list(json.loads((tmp_path / "metrics" / "eval.json").read_text())) == ["coco_1k", "coco_5k"]
    assert sorted(p.name for p in (tmp_path / "sims").iterdir()) == ["testall_ranks.npz", "testall_sims.npy"]


def test_vocabulary_mismatch_names_both_files(tmp_path: Path, params_file: Path) -> None:
    data = tmp_path / "prepared"
    prepare_split(data, "synthetic", "test", n_images=5)
    checkpoint = make_checkpoint(tmp_path / "other.pt", seed=0, vocab_sha256="b" * 64)
    result = run_evaluate(tmp_path, params_file, data, [checkpoint])
    assert isinstance(result.exception, HscError)
    message = str(result.exception)
    assert str(checkpoint) in message and str(data / "test.h5") in message and "vocabulary" in message
    assert not (tmp_path / "metrics" / "eval.json").exists()
