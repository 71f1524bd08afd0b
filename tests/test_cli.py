"""The `hsc` command as a user meets it: help, presets, params errors, exit codes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hsc.atomic import atomic_directory
from hsc.errors import HscError
from hsc.models.config import resolve_config
from hsc_app.cli import app
from hsc_app.params import load_params
from hsc_app.tools.preset import preset_names, preset_text

REPO = Path(__file__).resolve().parents[1]


def hsc(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsc_app.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_help_lists_every_stage_and_tool():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("download", "prepare", "train", "evaluate", "metrics", "import", "preset", "search", "embed", "rerank-sweep"):
        assert command in result.output


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
    ("model:\n  image:\n    graph_blocks: -1\n", r"params.yaml: key 'model.image.graph_blocks': Input should be"),
    ("model:\n  text:\n    attn_layer: 2\n", r"key 'model.text.attn_layer': Extra inputs are not permitted"),
    ("model:\n  name: vse\n", r"key 'model.name': unknown model 'vse' \(known: hsc, saf, sgr, hje"),
    ("model:\n  embed_size: 30\n  image:\n    graph_heads: 4\n", r"key 'model.image.graph_heads': 4 does not divide"),
    ("train:\n  lr: 0.1\nmodel:\n  name: saf\ntrain:\n  epochs: 3\n",
     r"params.yaml: key 'train' appears twice, on lines 1 and 5; keep one$"),
    ("train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n", r"params.yaml: key 'lr' appears twice, on lines 2 and 4"),
], ids=["bad value", "unknown key", "broken yaml", "bad model value", "unknown model key", "unknown model",
        "model cross-field", "duplicate section", "duplicate nested key"])
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


@pytest.mark.parametrize("registered, kept", [
    ("", "outputs are renamed into place only when complete, so none is half-written"),
    ("    interrupt.keep('ckpt/last.pt keeps the last finished epoch')\n", "ckpt/last.pt keeps the last finished epoch"),
], ids=["generic", "registered"])
def test_interrupted_command_exits_130_saying_what_stopped_and_what_is_kept(tmp_path, registered, kept):
    script = tmp_path / "stage.py"
    script.write_text("import typer\nfrom hsc import interrupt\nfrom hsc_app.cli import run_app\n"
                      "app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)\n"
                      f"@app.command()\ndef stage() -> None:\n{registered}    raise KeyboardInterrupt\n"
                      "run_app(app)\n")
    result = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 130
    assert result.stderr.splitlines() == [f"interrupted: stage.py stopped; {kept}"]


def test_ctrl_c_during_hsc_download_names_the_command_and_what_is_kept(tmp_path):
    with socket.socket() as listener:  # a server that accepts the request and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump({"dataset": "f30k_precomp", "download": {
            "mirror": f"http://127.0.0.1:{listener.getsockname()[1]}/data.zip", "timeout_s": 60}}))
        out, cache = tmp_path / "raw", tmp_path / "dl"
        # SIGINT as a terminal delivers it: a runner that starts jobs in the background (as a
        # non-interactive shell does) leaves it ignored, and Python then never sees Ctrl-C.
        process = subprocess.Popen([sys.executable, "-m", "hsc_app.cli", "download", "--params", str(params),
                                    "--out", str(out), "--cache", str(cache)],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        listener.settimeout(30)
        connection, _ = listener.accept()  # hsc is now waiting inside the download
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        connection.close()
    assert process.returncode == 130
    assert stderr.splitlines() == [f"interrupted: hsc download stopped; {out} is unchanged and {cache} keeps "
                                   f"any partial download, which the next run resumes"]


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


@pytest.mark.parametrize("params_file", ["params.yaml", ".ci/params.yaml"])
def test_params_files_hold_every_section_dvc_reads(params_file):
    """`dvc repro` refuses a params file without a section a stage lists under `params` (the
    files `hsc preset` writes: tests/test_preset.py)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    listed = {entry.split(".")[0] for stage in stages.values() for entry in stage.get("params", [])}
    sections = yaml.safe_load((REPO / params_file).read_text())
    assert listed <= set(sections), f"{params_file} lacks {sorted(listed - set(sections))}"
