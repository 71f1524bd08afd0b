"""The `threads` setting: params.yaml's `threads`, overridden by $HSC_THREADS, applied by every stage."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from hsc_app.cli import app
from hsc.errors import HscError
from hsc_app.params import load_params
from hsc.threads import apply_threads, resolve_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_environment_overrides_the_param():
    assert resolve_threads(3, {}) == (3, "params key threads")
    assert resolve_threads(3, {"HSC_THREADS": " "}) == (3, "params key threads")
    assert resolve_threads(3, {"HSC_THREADS": "2"}) == (2, "HSC_THREADS")
    assert resolve_threads(3, {"HSC_THREADS": "0"}) == (0, "HSC_THREADS")  # back to torch's default


@pytest.mark.parametrize("raw", ["-1", "x", "1.5"])
def test_bad_environment_value_is_one_line_naming_the_variable(raw):
    with pytest.raises(HscError, match=rf"^environment variable HSC_THREADS='{raw}': expected a whole number"):
        resolve_threads(0, {"HSC_THREADS": raw})


@pytest.mark.parametrize("value, message", [
    ("-1", r"params.yaml: key 'threads': Input should be greater than or equal to 0"),
    ("x", r"params.yaml: key 'threads': Input should be a valid integer"),
])
def test_bad_param_is_one_line_naming_the_key(tmp_path, value, message):
    params = tmp_path / "params.yaml"
    params.write_text(f"threads: {value}\n")
    with pytest.raises(HscError, match=message):
        load_params(params)


def test_apply_sets_torch_threads_and_zero_leaves_them(restore_threads):
    other = 2 if torch.get_num_threads() != 2 else 1
    assert apply_threads(0, {}) is None
    assert apply_threads(0, {"HSC_THREADS": str(other)}) == other
    assert torch.get_num_threads() == other


@pytest.mark.parametrize("stage, args", [
    ("download", ["--out", "{tmp}/raw", "--cache", "{tmp}/dl", "--mirror", "{tmp}/no-mirror"]),
    ("prepare", ["--raw", "{tmp}/nowhere", "--out", "{tmp}/prepared"]),
    ("train", ["--data", "{tmp}/nowhere", "--out", "{tmp}/ckpt", "--metrics", "{tmp}/m"]),
    ("evaluate", ["--checkpoint", "{tmp}/best.pt", "--data", "{tmp}/nowhere", "--out", "{tmp}/eval.json",
                  "--plots", "{tmp}/recall"]),
])
def test_every_stage_applies_threads_before_its_work(tmp_path, stage, args, restore_threads):
    """Each stage fails on its missing input, after setting torch's threads (or refusing a bad value)."""
    params = tmp_path / "params.yaml"
    params.write_text("dataset: f30k_precomp\nthreads: 1\n")
    argv = [stage, "--params", str(params), *(arg.format(tmp=tmp_path) for arg in args)]
    other = 2 if torch.get_num_threads() != 2 else 3
    result = CliRunner().invoke(app, argv, env={"HSC_THREADS": str(other)})
    assert isinstance(result.exception, HscError) and "HSC_THREADS" not in str(result.exception)
    assert f"threads: {other} (from HSC_THREADS)" in result.output
    assert torch.get_num_threads() == other
    result = CliRunner().invoke(app, argv, env={"HSC_THREADS": "x"})
    assert isinstance(result.exception, HscError)
    assert str(result.exception).startswith("environment variable HSC_THREADS")
