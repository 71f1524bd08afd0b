"""Safe loading of released checkpoints in the formats their authors wrote
(``released_checkpoints.save_released``)."""

from __future__ import annotations

import argparse
import pickle
import struct
import types
from pathlib import Path

import pytest
import torch
from released_checkpoints import FORMATS, CallsModuleFunction, save_released

from hsc.errors import HscError
from hsc.legacy.safe_load import load_released


def _tiny_parts() -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    bn = torch.nn.BatchNorm1d(4)
    bn.running_mean.uniform_(generator=gen)
    img = {"fc.weight": torch.randn(4, 6, generator=gen), "fc.bias": torch.randn(4, generator=gen),
           **{f"W.1.{key}": value for key, value in bn.state_dict().items()}}
    txt = {"embed.weight": torch.randn(10, 3, generator=gen)}
    sim = {"sim_eval_w.weight": torch.randn(1, 4, generator=gen), "sim_eval_w.bias": torch.zeros(1)}
    return [img, txt, sim]


def _opt() -> argparse.Namespace:
    return argparse.Namespace(data_name="f30k_precomp", embed_size=4, bi_gru=True, margin=0.2,
                              module_name="SAF", logger_name="./runs/caf\xe9/log", lr_update=20)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_weights_and_options_exactly(tmp_path: Path, fmt: str) -> None:
    parts = _tiny_parts()
    released = load_released(save_released(tmp_path / "model_best.pth.tar", parts, _opt(), fmt))
    for name, state in zip(("img_enc", "txt_enc", "sim_enc"), parts):
        assert released.parts[name].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(released.parts[name][key], value), key
            assert released.parts[name][key].device.type == "cpu"
    assert released.opt == vars(_opt())
    assert (released.epoch, released.best_rsum) == (12, 487.5)


def test_python2_file_really_holds_byte_strings_and_gpu_storages(tmp_path: Path) -> None:
    path = save_released(tmp_path / "m.pth.tar", _tiny_parts(), _opt(), "py2")
    data = path.read_bytes()
    assert pickle.SHORT_BINSTRING + bytes([len("module_name")]) + b"module_name" in data
    assert b"\x06cuda:0" in data
    assert pickle.BINUNICODE + struct.pack("<I", len("module_name")) + b"module_name" not in data


def test_options_are_optional(tmp_path: Path) -> None:
    released = load_released(save_released(tmp_path / "m.pth.tar", _tiny_parts(), None, "zip"))
    assert released.opt == {}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_pickled_code_payload_is_refused_and_never_runs(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "payload-ran"
    path = save_released(tmp_path / "evil.pth.tar", _tiny_parts(), _opt(), fmt, payload=CallsModuleFunction(marker))
    with pytest.raises(HscError) as refused:
        load_released(path)
    message = str(refused.value)
    assert "\n" not in message and "refused" in message and "_plant" in message
    assert not marker.exists()
    # The payload is live: an unrestricted load runs it (so the assertion above can fail).
    torch.load(path, weights_only=False, map_location="cpu", encoding="latin1")
    assert marker.read_text() == "the payload ran"


def test_options_of_a_class_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    opt = types.SimpleNamespace(**vars(_opt()))
    with pytest.raises(HscError, match="refused.*SimpleNamespace"):
        load_released(save_released(tmp_path / "m.pth.tar", _tiny_parts(), opt, "zip"))


@pytest.mark.parametrize("content, match", [
    (b"this is not a checkpoint at all", "not a readable torch checkpoint"),
    (None, "no such checkpoint file"),
])
def test_unreadable_files_give_one_line(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "model_best.pth.tar"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(HscError, match=match) as error:
        load_released(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("checkpoint, match", [
    ({"state_dict": {}}, "no 'model' entry"),
    ({"model": [{}, {}]}, "'model' should be a list of 3 state dicts"),
    ({"model": [{}, {}, [1, 2]]}, "sim_enc entry of 'model' should be a state dict"),
    ({"model": [{"fc.weight": 3}, {}, {}]}, "img_enc key 'fc.weight' should map a name to a tensor"),
    ({"model": [{}, {}, {}], "opt": {"embed_size": 4}}, "'opt' should be the training options"),
])
def test_wrong_layouts_give_one_line_naming_the_key(tmp_path: Path, checkpoint: dict, match: str) -> None:
    path = tmp_path / "m.pth.tar"
    torch.save(checkpoint, path)
    with pytest.raises(HscError, match=match):
        load_released(path)

