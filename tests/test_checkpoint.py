"""Checkpoints: atomic save, weights-only load, clear errors, models rebuilt from the file alone."""

from __future__ import annotations

import errno
import zipfile
from pathlib import Path

import pytest
import torch

from hsc.atomic import DiskFull
from hsc.checkpoint import checksum, load_checkpoint, load_model, save_checkpoint
from hsc.errors import HscError
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model

CONFIG = ModelSpec.resolve("hsc", DataShape(img_dim=10, regions=4, vocab_size=25),
                          {"embed_size": 16, "image": {"graph_blocks": 1}, "text": {"word_dim": 8, "attn_layers": 1},
                           "head": {"sim_dim": 8}})


def trained_a_little(seed: int = 0) -> torch.nn.Module:
    """A model whose BatchNorm statistics moved, so a lost buffer would change its scores."""
    torch.manual_seed(seed)
    model = build_model(CONFIG).train()
    model(torch.randn(4, 4, 10), torch.randint(4, 25, (4, 6)), torch.tensor([6, 3, 5, 2]))
    return model.eval()


def test_round_trip_gives_the_same_scores_and_keeps_extra_state(tmp_path: Path) -> None:
    model = trained_a_little()
    optimizer = torch.optim.Adam(model.parameters())
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(path, model, vocab_sha256="ab" * 32, epoch=3, best_rsum=12.5, history=[{"epoch": 1.0}],
                    optimizer=optimizer.state_dict(), rng=torch.get_rng_state())
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary left behind
    loaded, checkpoint = load_model(path)
    assert (checkpoint["format"], checkpoint["version"], checkpoint["epoch"]) == ("hsc-checkpoint", 2, 3)
    assert checkpoint["vocab_sha256"] == "ab" * 32 and checkpoint["history"] == [{"epoch": 1.0}]
    assert ModelSpec.from_dict(checkpoint["model_config"]) == CONFIG
    assert not loaded.training
    feats, tokens, lengths = torch.randn(3, 4, 10), torch.randint(4, 25, (5, 7)), torch.tensor([7, 2, 4, 7, 1])
    with torch.no_grad():
        expected = model.similarity(model.encode_images(feats), model.encode_captions(tokens, lengths), lengths)
        got = loaded.similarity(loaded.encode_images(feats), loaded.encode_captions(tokens, lengths), lengths)
    assert torch.equal(got, expected)


def test_missing_corrupt_and_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(HscError, match="nowhere.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "nowhere.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a zip archive at all")
    with pytest.raises(HscError, match="corrupt.pt: not a readable hsc checkpoint") as info:
        load_checkpoint(corrupt)
    assert "\n" not in str(info.value) and "weights_only" not in str(info.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": [{}, {}, {}], "epoch": 3}, foreign)
    with pytest.raises(HscError, match="foreign.pt: not an hsc checkpoint"):
        load_checkpoint(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "hsc-checkpoint", "payload": object()}, unsafe)
    with pytest.raises(HscError, match="unsafe.pt: refused to load: it holds object, which is not allowed") as info:
        load_checkpoint(unsafe)
    assert "weights_only=False" not in str(info.value) and "\n" not in str(info.value)  # never advise running it


def test_weights_that_do_not_fit_the_config_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    save_checkpoint(path, build_model(CONFIG), vocab_sha256="00")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["img_enc.fc.weight"] = torch.zeros(3, 3)
    checkpoint["checksum"] = checksum(checkpoint)  # intact, so the load gets as far as the weights
    torch.save(checkpoint, path)
    with pytest.raises(HscError, match="bad.pt: its weights do not fit its model_config"):
        load_model(path)


def test_a_truncated_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, trained_a_little(), vocab_sha256="00")
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(HscError, match="best.pt: not a readable hsc checkpoint, truncated or corrupt") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_changed_tensor_bytes_fail_the_checksum(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, trained_a_little(), vocab_sha256="00")
    with zipfile.ZipFile(path) as archive:  # rewrite the archive with one tensor's bytes changed
        members = [(info, archive.read(info)) for info in archive.infolist()]
    flipped = tmp_path / "flipped.pt"
    with zipfile.ZipFile(flipped, "w") as archive:
        for info, data in members:
            if info.filename.endswith("/data/0"):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            archive.writestr(info, data)
    assert torch.load(flipped, weights_only=True)["state_dict"]  # still a valid torch file
    with pytest.raises(HscError, match=r"flipped.pt: is damaged \(checksum mismatch\); train again"):
        load_checkpoint(flipped)


def test_a_version_1_checkpoint_is_refused_saying_how_to_get_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    save_checkpoint(path, build_model(CONFIG), vocab_sha256="00")
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "version": 1}, path)
    with pytest.raises(HscError, match="old.pt: hsc checkpoint version 1.*older hsc: train again, or run `hsc import`"):
        load_checkpoint(path)


def test_the_same_weights_give_the_same_bytes(tmp_path: Path) -> None:
    model = trained_a_little()
    save_checkpoint(tmp_path / "a.pt", model, vocab_sha256="00", epoch=1)
    save_checkpoint(tmp_path / "b" / "best.pt", model, vocab_sha256="00", epoch=1)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b" / "best.pt").read_bytes()


def test_a_full_disk_is_one_line_and_leaves_nothing(small_disk: Path) -> None:
    with pytest.raises(DiskFull, match=r"best.pt: no space left on device \(it needs about 1\.[0-9] MB") as info:
        save_checkpoint(small_disk / "best.pt", trained_a_little(), vocab_sha256="00",
                        optimizer={"moments": torch.zeros(300_000)})  # 1.2 MB on a 1 MB disk
    assert "\n" not in str(info.value) and list(small_disk.iterdir()) == []


def test_an_injected_write_failure_is_the_same_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(self: Path, data: bytes) -> int:
        self.open("wb").close()  # the temporary file exists, as after a partial write
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(DiskFull, match="last.pt: no space left on device"):
        save_checkpoint(tmp_path / "last.pt", trained_a_little(), vocab_sha256="00")
    assert list(tmp_path.iterdir()) == []
