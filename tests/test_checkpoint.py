"""Checkpoints: atomic save, weights-only load, clear errors, models rebuilt from the file alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hsc.checkpoint import load_checkpoint, load_model, save_checkpoint
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
    assert (checkpoint["format"], checkpoint["version"], checkpoint["epoch"]) == ("hsc-checkpoint", 1, 3)
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
    assert "\n" not in str(info.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": [{}, {}, {}], "epoch": 3}, foreign)
    with pytest.raises(HscError, match="foreign.pt: not an hsc checkpoint"):
        load_checkpoint(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "hsc-checkpoint", "payload": object()}, unsafe)
    with pytest.raises(HscError, match="unsafe.pt: not a readable hsc checkpoint"):
        load_checkpoint(unsafe)


def test_weights_that_do_not_fit_the_config_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    save_checkpoint(path, build_model(CONFIG), vocab_sha256="00")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["img_enc.fc.weight"] = torch.zeros(3, 3)
    torch.save(checkpoint, path)
    with pytest.raises(HscError, match="bad.pt: its weights do not fit its model_config"):
        load_model(path)
