"""The prepare stage end to end: outputs, dev cut, released vocabulary, and all-or-nothing output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import hsc.data.prepare
from hsc.data.config import PrepareParams
from hsc.data.prepare import prepare_dataset
from hsc.data.store import SplitReader
from hsc.data.vocab import SPECIALS, Vocabulary
from hsc.errors import HscError
from hsc_app.stages.prepare import app
from factories import WORDS, write_raw_split, write_released_vocab

@pytest.fixture
def raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    for split, n in (("train", 12), ("dev", 6), ("test", 4)):
        write_raw_split(raw, split, n)
    return raw


def test_stage_writes_vocab_and_splits(raw: Path, tmp_path: Path):
    (tmp_path / "params.yaml").write_text("prepare:\n  dev_images: null\n", encoding="utf-8")
    out = tmp_path / "prepared"
    result = CliRunner().invoke(app, ["--params", str(tmp_path / "params.yaml"), "--raw", str(raw), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "unknown" in result.output and "train" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["dev.h5", "test.h5", "train.h5", "vocab.json"]
    vocab = Vocabulary.load(out / "vocab.json")
    assert len(vocab) == len(SPECIALS) + len(WORDS)
    features = np.load(raw / "test_ims.npy")
    test = SplitReader(out / "test.h5")
    assert (test.n_images, test.n_captions, test.vocab_sha256) == (4, 20, vocab.sha256)
    np.testing.assert_array_equal(test.features([3, 1]), features[[3, 1]])
    first_line = (raw / "test_caps.txt").read_text(encoding="utf-8").splitlines()[0]
    assert test.caption(0).tolist() == vocab.encode(first_line.split())
    sources = json.loads(test.attrs["source_sha256"])
    assert sorted(sources) == ["test_caps.txt", "test_ims.npy"]
    assert test.attrs["dataset"] == "synthetic" and test.attrs["captions_per_image"] == 5
    assert not list(tmp_path.glob(".prepared*"))


def test_dev_is_cut_and_testall_is_kept(raw: Path, tmp_path: Path):
    write_raw_split(raw, "testall", 5)
    summaries, _ = prepare_dataset(raw, tmp_path / "out", "coco_precomp", PrepareParams(dev_images=2))
    figures = {s.split: (s.images, s.captions) for s in summaries}
    assert figures == {"train": (12, 60), "dev": (2, 10), "test": (4, 20), "testall": (5, 25)}
    dev = SplitReader(tmp_path / "out" / "dev.h5")
    assert (dev.n_images, dev.n_captions) == (2, 10)
    np.testing.assert_array_equal(dev.features([0, 1]), np.load(raw / "dev_ims.npy")[:2])


def test_dev_cut_with_one_row_per_caption_keeps_five_captions_per_image(tmp_path: Path):
    raw = tmp_path / "raw"
    write_raw_split(raw, "train", 4)
    write_raw_split(raw, "dev", 20, captions_per_image=1)
    write_raw_split(raw, "test", 2)
    summaries, _ = prepare_dataset(raw, tmp_path / "out", "synthetic", PrepareParams(dev_images=2))
    assert [(s.images, s.captions) for s in summaries if s.split == "dev"] == [(10, 10)]


def test_released_vocabulary_keeps_exact_ids(raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shuffled = [*SPECIALS, *sorted(WORDS, reverse=True)[:-1]]  # "a" is left out: unknown
    write_released_vocab(tmp_path / "released.json", shuffled)
    monkeypatch.chdir(tmp_path)  # a relative prepare.vocab is read from the working directory
    summaries, size = prepare_dataset(raw, tmp_path / "out", "f30k_precomp", PrepareParams(vocab="released.json"))
    assert size == len(shuffled)
    saved = Vocabulary.load(tmp_path / "out" / "vocab.json")
    assert [saved.word_of(i) for i in range(size)] == shuffled
    train = SplitReader(tmp_path / "out" / "train.h5")
    assert train.vocab_sha256 == Vocabulary.load(tmp_path / "released.json").sha256
    line = (raw / "train_caps.txt").read_text(encoding="utf-8").splitlines()[0]
    assert train.caption(0).tolist() == [1, *(shuffled.index(w) if w != "a" else 3 for w in line.split()), 2]
    assert all(s.unknown_rate > 0 for s in summaries)


@pytest.mark.parametrize("folder, warned", [("data/vocab", False), ("elsewhere", True)])
def test_stage_warns_when_the_released_vocabulary_is_outside_the_tracked_folder(
        raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str, warned: bool):
    monkeypatch.chdir(tmp_path)
    (tmp_path / folder).mkdir(parents=True)
    Vocabulary.from_counts(Counter(WORDS), 1).save(tmp_path / folder / "released.json")
    (tmp_path / "params.yaml").write_text(f"prepare:\n  vocab: {folder}/released.json\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--params", "params.yaml", "--raw", str(raw), "--out", "out"])
    assert result.exit_code == 0, result.output
    assert ("dvc repro` will not re-run prepare" in " ".join(result.output.split())) is warned
    assert (tmp_path / "out" / "train.h5").is_file()


def test_crash_midway_leaves_no_output(raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "out"
    real_write = hsc.data.prepare.write_split

    def fail_on_dev(path: Path, *args, **kwargs) -> None:
        if path.name == "dev.h5":
            raise KeyboardInterrupt
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(hsc.data.prepare, "write_split", fail_on_dev)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw, out, "synthetic", PrepareParams())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_rerun_replaces_previous_output(raw: Path, tmp_path: Path):
    out = tmp_path / "out"
    prepare_dataset(raw, out, "synthetic", PrepareParams())
    (out / "stale.h5").write_bytes(b"old")
    prepare_dataset(raw, out, "synthetic", PrepareParams(min_count=1000))
    assert sorted(p.name for p in out.iterdir()) == ["dev.h5", "test.h5", "train.h5", "vocab.json"]
    assert len(Vocabulary.load(out / "vocab.json")) == len(SPECIALS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_mismatched_feature_dims_fail_before_writing(raw: Path, tmp_path: Path):
    write_raw_split(raw, "test", 4, dim=9)
    with pytest.raises(HscError, match="test_ims.npy: features are 4 x 9"):
        prepare_dataset(raw, tmp_path / "out", "synthetic", PrepareParams())
    assert not (tmp_path / "out").exists()


def test_bad_caption_line_is_reported_by_the_command(raw: Path, tmp_path: Path):
    lines = (raw / "dev_caps.txt").read_text(encoding="utf-8").splitlines()
    lines[7] = "   "
    (raw / "dev_caps.txt").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--params", str(tmp_path / "params.yaml"), "--raw", str(raw),
                                      "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, HscError)
    assert str(result.exception) == f"{raw / 'dev_caps.txt'}: line 8 is empty; every line must hold one caption"


@pytest.mark.parametrize("dtype, value", [("float32", 1e39), ("float16", 1e5)])
def test_features_beyond_the_stored_dtype_name_file_and_row(raw: Path, tmp_path: Path, dtype: str, value: float):
    features = np.load(raw / "test_ims.npy").astype(np.float64)
    features[2, 1, 3] = value  # finite as float64, inf once cast to the stored dtype
    np.save(raw / "test_ims.npy", features)
    with pytest.raises(HscError) as info:
        prepare_dataset(raw, tmp_path / "out", "synthetic", PrepareParams(feature_dtype=dtype))
    message = str(info.value)
    assert message.startswith(f"{raw / 'test_ims.npy'}: image row 2 holds values beyond the {dtype} range")
    assert ("prepare.feature_dtype to float32" in message) == (dtype == "float16")
    assert not (tmp_path / "out").exists()


def test_a_full_disk_is_one_line_exit_2_and_leaves_nothing(tmp_path: Path, small_disk: Path):
    raw = tmp_path / "raw"
    for split, n in (("train", 300), ("dev", 2), ("test", 2)):  # 4.9 MB of train features for a 1 MB disk
        write_raw_split(raw, split, n, captions_per_image=1, dim=1024)
    (tmp_path / "params.yaml").write_text("prepare:\n  dev_images: null\n", encoding="utf-8")
    out = small_disk / "prepared"
    # a subprocess: h5py used to crash the interpreter (segfault) closing the file after the failed write
    done = subprocess.run([sys.executable, "-m", "hsc_app.cli", "prepare", "--params", str(tmp_path / "params.yaml"),
                           "--raw", str(raw), "--out", str(out)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {out / 'train.h5'}: no space left on device (it needs about 4.9 MB"), done.stderr
    assert "Traceback" not in done.stderr
    assert list(small_disk.iterdir()) == []
