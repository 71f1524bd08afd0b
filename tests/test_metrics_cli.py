"""`hsc metrics` on saved score matrices: JSON with the 11 keys, folds, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hsc.errors import HscError
from hsc.evaluation.ranks import METRIC_KEYS, fold_metrics, rank_metrics
from hsc_app.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sims_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((10, 50)).astype(np.float32)
    sims[np.arange(50) // 5, np.arange(50)] += 1.0
    path = tmp_path / "test_sims.npy"
    np.save(path, sims)
    return path, sims


def run_metrics(*args: str):
    return CliRunner().invoke(app, ["metrics", *args])


def test_prints_the_eleven_metrics(sims_file: tuple[Path, np.ndarray]) -> None:
    path, sims = sims_file
    result = run_metrics(str(path))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert tuple(printed) == METRIC_KEYS
    expected = rank_metrics(sims)
    assert printed == {key: pytest.approx(expected[key], abs=0.005) for key in METRIC_KEYS}


def test_constant_matrix_is_ranked_pessimistically(tmp_path: Path) -> None:
    path = tmp_path / "collapsed.npy"
    np.save(path, np.full((10, 50), 0.5, np.float32))
    result = run_metrics(str(path))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    # Every ground truth ranks below all its tied wrong candidates; only t2i R@10 (all 10 images) is 100.
    assert printed["rsum"] == 100.0 and printed["i2t_r10"] == 0.0 and printed["t2i_r5"] == 0.0


def test_folds_print_the_fold_mean(sims_file: tuple[Path, np.ndarray]) -> None:
    path, sims = sims_file
    result = run_metrics(str(path), "--folds", "5")
    assert result.exit_code == 0, result.output
    expected = fold_metrics(sims, folds=5)
    assert json.loads(result.output) == {key: pytest.approx(expected[key], abs=0.005) for key in METRIC_KEYS}


@pytest.mark.parametrize("name, content, message", [
    ("wide.npy", np.zeros((3, 10), np.float32), r"shape \(3, 10\) is not \(N images, 5N captions\)"),
    ("nan.npy", np.full((2, 10), np.nan, np.float32), "NaN"),
    ("text.npy", b"not an array", "not a readable .npy array"),
    ("scores.txt", b"1 2 3", "expected a .npy file"),
    ("absent.npy", None, "no such file"),
])
def test_bad_inputs_are_one_line_errors(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif content is not None:
        path.write_bytes(content)
    result = run_metrics(str(path))
    assert isinstance(result.exception, HscError)
    text = str(result.exception)
    assert str(path) in text and "\n" not in text
    assert re.search(message, text)


def test_folds_that_do_not_divide_are_an_error(sims_file: tuple[Path, np.ndarray]) -> None:
    result = run_metrics(str(sims_file[0]), "--folds", "3")
    assert isinstance(result.exception, HscError)
    assert "10 images do not split into 3 equal folds" in str(result.exception)


def test_command_line_prints_error_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3), np.float32))
    done = subprocess.run([sys.executable, "-m", "hsc_app.cli", "metrics", str(bad)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {bad}: shape (2, 3)")


@pytest.mark.parametrize("as_npz", [False, True])
def test_caption_image_mapping_file(tmp_path: Path, as_npz: bool) -> None:
    rng = np.random.default_rng(1)
    mapping = np.repeat(np.arange(4), [5, 6, 7, 5])
    sims = rng.standard_normal((4, len(mapping))).astype(np.float32)
    np.save(tmp_path / "sims.npy", sims)
    if as_npz:
        np.savez(tmp_path / "test_ranks.npz", caption_image=mapping)
        target = tmp_path / "test_ranks.npz"
    else:
        np.save(tmp_path / "map.npy", mapping)
        target = tmp_path / "map.npy"
    result = run_metrics(str(tmp_path / "sims.npy"), "--caption-image", str(target))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rsum"] == round(rank_metrics(sims, caption_image=mapping)["rsum"], 2)
