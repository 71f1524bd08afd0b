"""The `hsc` command as a user meets it: help, presets, params errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hsc.atomic import atomic_directory
from hsc.cli import app
from hsc.errors import HscError
from hsc.models.config import resolve_config
from hsc.params import load_params
from hsc.tools.preset import preset_names, preset_text

REPO = Path(__file__).resolve().parents[1]


def hsc(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsc.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_help_lists_every_stage_and_tool():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("download", "prepare", "train", "evaluate", "metrics", "import", "preset", "search", "embed", "rerank-sweep"):
        assert command in result.output


@pytest.mark.parametrize("command", ["download", "prepare", "train", "evaluate", "metrics", "import", "preset", "search", "embed",
                                     "rerank-sweep"])
def test_every_command_explains_its_options(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--help" in result.output and len(result.output.splitlines()) > 5


def test_committed_params_are_the_synthetic_preset():
    assert (REPO / "params.yaml").read_text() == preset_text("synthetic")


@pytest.mark.parametrize("name", ["synthetic", "f30k", "coco"])
def test_presets_validate(name):
    assert name in preset_names()
    yaml.safe_load(preset_text(name))


def test_preset_switches_the_params_file(tmp_path):
    params = tmp_path / "params.yaml"
    result = hsc("preset", "f30k", "--params", str(params))
    assert result.returncode == 0, result.stderr
    loaded = load_params(params)
    embed_size = resolve_config(loaded.model.name, loaded.model.model_dump()).embed_size  # the paper's default
    assert (loaded.dataset, embed_size, loaded.train.epochs, loaded.train.lr_update) == \
        ("f30k_precomp", 1024, 50, 20)


def test_unknown_preset_is_one_line_and_exit_2(tmp_path):
    result = hsc("preset", "imagenet", "--params", str(tmp_path / "p.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: unknown preset 'imagenet'; choose one of: coco, f30k, synthetic"]
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize("text, message", [
    ("model:\n  embed_size: -3\n", r"params.yaml: key 'model.embed_size'"),
    ("train:\n  epoch: 3\n", r"key 'train.epoch': Extra inputs are not permitted"),
    ("train:\n  epochs: [3\n", r"params.yaml: line \d+ is not valid YAML"),
], ids=["bad value", "unknown key", "broken yaml"])
def test_bad_params_file_is_one_line_naming_file_and_key_or_line(tmp_path, text, message):
    params = tmp_path / "params.yaml"
    params.write_text(text)
    with pytest.raises(HscError, match=message):
        load_params(params)


def test_stage_error_is_one_line_with_exit_2(tmp_path):
    result = hsc("train", "--params", str(REPO / "params.yaml"), "--data", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "ckpt"), "--metrics", str(tmp_path / "m"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nowhere" in lines[0]


def test_usage_error_is_a_usage_message_with_exit_2_not_a_traceback():
    result = hsc("train", "--bogus")
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr and "Traceback" not in result.stderr


def test_interrupted_command_exits_130_so_dvc_sees_the_failure(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text("import typer\nfrom hsc.cli import run_app\n"
                      "app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)\n"
                      "@app.command()\ndef stage() -> None:\n    raise KeyboardInterrupt\n"
                      "run_app(app)\n")
    result = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 130


def test_atomic_directory_keeps_the_old_output_when_the_build_fails(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("complete")
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as staging:
            (staging / "half.txt").write_text("half")
            raise RuntimeError("crash")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with atomic_directory(out) as staging:
        (staging / "new.txt").write_text("complete")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
