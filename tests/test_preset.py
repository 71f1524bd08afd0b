"""`hsc preset`: overlays that set only their keys, keep other edits, show the change and
refuse to overwrite uncommitted edits without --force."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hsc.errors import HscError
from hsc_app.params import load_params
from hsc_app.tools.preset import DEFAULTS, apply, defaults_text, overlay, preset_names, preset_text
from hsc_app.yaml_edit import leaves

REPO = Path(__file__).resolve().parents[1]
OVERLAYS = [name for name in preset_names() if name != DEFAULTS]


def hsc_preset(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsc_app.cli", "preset", *args], cwd=cwd, capture_output=True,
                          text=True)


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree whose committed params.yaml is the defaults."""
    (tmp_path / "params.yaml").write_text(defaults_text())
    git("init", "-q", cwd=tmp_path)
    git("add", "params.yaml", cwd=tmp_path)
    git("commit", "-qm", "params", cwd=tmp_path)
    return tmp_path


def edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlays_list_only_keys_whose_values_differ_from_the_defaults(name):
    defaults = leaves(defaults_text(), DEFAULTS)
    keys = overlay(name)
    assert ("dataset",) in keys and len(keys) < len(defaults) / 5
    for path, leaf in keys.items():
        assert path in defaults and leaf.value != defaults[path].value, path


def test_preset_keeps_other_edits_and_comments():
    text = edited(defaults_text(), "  batch_size: 128\n", "  batch_size: 64            # mine\n")
    text = edited(text, "\ntrain:\n", "\n# my note on training\ntrain:\n")
    result, changes = apply(text, "f30k", "params.yaml")
    changed_keys = {change.key.split(".")[-1] for change in changes}
    before, after = text.splitlines(), result.splitlines()
    assert len(before) == len(after)
    differing = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(differing) == len(changes) == 10
    assert all(old.split(":")[0].strip() in changed_keys for old, _ in differing)  # only the preset's lines
    assert "  batch_size: 64            # mine" in after and "# my note on training" in after
    assert "  max_violation_warmup: 1   # sum over negatives in epoch 1: VSE-infinity's value (README)" in after


def test_preset_shows_each_change_as_key_old_new(repo):
    result = hsc_preset("f30k", cwd=repo)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in ["dataset: synthetic -> f30k_precomp", "model.embed_size: 128 -> null",
                     "train.lr: 0.0005 -> 0.0002", "train.max_violation: false -> true"]:
        assert f"  {expected}" in lines
    assert lines[-1].startswith("params.yaml: the 'f30k' preset (10 keys changed)")
    params = load_params(repo / "params.yaml")
    assert (params.dataset, params.train.epochs, params.train.lr, params.model.embed_size) == \
        ("f30k_precomp", 50, 0.0002, None)
    again = hsc_preset("f30k", cwd=repo)
    assert again.stdout.splitlines() == ["params.yaml: already has the 'f30k' preset's values; nothing changed"]


def test_preset_refuses_to_overwrite_uncommitted_edits_without_force(repo):
    params = repo / "params.yaml"
    text = edited(params.read_text(), "  lr: 0.0005\n", "  lr: 0.001\n")
    params.write_text(text)
    result = hsc_preset("f30k", cwd=repo)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: params.yaml: preset 'f30k' would overwrite uncommitted edits (train.lr 0.001 -> 0.0002); "
        "commit them, or run `hsc preset f30k --force`"]
    assert params.read_text() == text


def test_force_overwrites_uncommitted_edits(repo):
    params = repo / "params.yaml"
    params.write_text(edited(params.read_text(), "  lr: 0.0005\n", "  lr: 0.001\n"))
    result = hsc_preset("f30k", "--force", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "  train.lr: 0.001 -> 0.0002" in result.stdout.splitlines()
    assert load_params(params).train.lr == 0.0002


def test_committed_edits_and_other_presets_values_are_not_refused(repo):
    params = repo / "params.yaml"
    params.write_text(edited(params.read_text(), "  lr: 0.0005\n", "  lr: 0.001\n"))
    git("commit", "-qam", "my lr", cwd=repo)  # git keeps it now
    assert hsc_preset("f30k", cwd=repo).returncode == 0
    assert hsc_preset("synthetic", cwd=repo).returncode == 0  # f30k's values are a preset's, not edits
    assert load_params(params).train.lr == 0.0005


def test_outside_git_only_values_no_preset_gives_count_as_edits():
    text = edited(defaults_text(), "  lr: 0.0005\n", "  lr: 0.001\n")
    with pytest.raises(HscError, match=r"would overwrite uncommitted edits \(train.lr 0.001 -> 0.0002\)"):
        apply(text, "f30k", "params.yaml", committed=None, force=False)
    switched, _ = apply(defaults_text(), "coco", "params.yaml")
    assert apply(switched, "f30k", "params.yaml", committed=None, force=False)[0] == preset_text("f30k")


def test_switching_back_and_forth_is_consistent():
    start = edited(defaults_text(), "  margin: 0.2\n", "  margin: 0.3            # mine\n")
    f30k, _ = apply(start, "f30k", "params.yaml")
    coco, _ = apply(f30k, "coco", "params.yaml")
    assert apply(coco, "f30k", "params.yaml")[0] == f30k
    back, changes = apply(coco, "synthetic", "params.yaml")
    assert back == start  # every key f30k or coco changed has its default again, comments included
    assert {change.key for change in changes} == {".".join(path) for path in overlay("f30k")}
    assert apply(back, "synthetic", "params.yaml")[1] == []


def test_missing_keys_and_sections_are_added():
    text = "# mine\ntrain:\n  batch_size: 64\n  epochs: 3\nmodel:\n"
    result, changes = apply(text, "f30k", "params.yaml", force=True)  # epochs: 3 is an edit
    assert result.startswith("# mine\ntrain:\n  batch_size: 64\n  epochs: 50\n")
    assert "  train.lr: (absent) -> 0.0002" in [f"  {change}" for change in changes]
    loaded = yaml.safe_load(result)
    assert loaded["model"]["text"] == {"word_dim": None} and loaded["train"]["batch_size"] == 64
    assert loaded["dataset"] == "f30k_precomp" and loaded["train"]["max_violation_warmup"] == 1


@pytest.mark.parametrize("name", preset_names())
def test_preset_files_written_whole_hold_every_section_dvc_reads(name):
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    listed = {entry.split(".")[0] for stage in stages.values() for entry in stage.get("params", [])}
    assert listed <= set(yaml.safe_load(preset_text(name)))
