"""Released checkpoints written as their authors wrote them, for the import and loading tests.

``save_released`` writes the released layout in three formats: torch's zip format (SGRAF,
newer torch), torch's legacy format, and the legacy format as Python 2.7 / torch 0.4 wrote it
(byte strings, Python 2's OrderedDict pickling, storages tagged ``cuda:0`` because the
authors trained on GPUs). ``CallsModuleFunction`` is a payload a malicious file would carry.
"""

from __future__ import annotations

import argparse
import pickle
import struct
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

FORMATS = ("zip", "legacy", "py2")


class Python2Pickler(pickle._Pickler):
    """The pure-Python pickler, made to write what Python 2.7's ``cPickle`` wrote.

    Python 2 ``str`` was a byte string (opcode SHORT_BINSTRING), ``OrderedDict`` reduced to
    a list of ``[key, value]`` pairs plus its ``__dict__`` (torch's ``_metadata``), and
    torch 0.4 tagged the storages of a GPU model with their device.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, obj: str) -> None:
        data = obj.encode("latin1")
        assert len(data) < 256, "longer strings were BINSTRING, which torch's safe unpickler does not read"
        self.write(pickle.SHORT_BINSTRING + struct.pack("<B", len(data)) + data)
        self.memoize(obj)

    def save_python2_ordered_dict(self, obj: OrderedDict) -> None:
        items = [[key, value] for key, value in obj.items()]
        self.save_reduce(OrderedDict, (items,), state=dict(vars(obj)) or None, obj=obj)

    dispatch[str] = save_byte_string
    dispatch[OrderedDict] = save_python2_ordered_dict

    def save_pers(self, pid: tuple) -> None:
        """Tag every storage ``cuda:0``: the authors saved GPU models."""
        super().save_pers((*pid[:3], "cuda:0", *pid[4:]))


def _python2_pickle_module() -> types.ModuleType:
    module = types.ModuleType("python2_pickle")
    module.Pickler = Python2Pickler
    module.dump = lambda obj, file, protocol: Python2Pickler(file, protocol).dump(obj)
    return module


def save_released(path: Path, parts: list[dict[str, torch.Tensor]], opt: argparse.Namespace | None,
                  fmt: str, key_prefix: str = "", **extra: Any) -> Path:
    """Write ``{model: [img_enc, txt_enc, sim_enc], opt, epoch, best_rsum, Eiters}`` as released.

    ``key_prefix`` "module." writes the keys as forks that wrapped encoders in DataParallel did.
    """
    states = []
    for state in parts:
        ordered = OrderedDict((key_prefix + key, value.detach().clone()) for key, value in state.items())
        ordered._metadata = OrderedDict((key.rsplit(".", 1)[0], {"version": 1}) for key in ordered)
        states.append(ordered)
    checkpoint = {"model": states, "opt": opt, "epoch": 12, "best_rsum": 487.5, "Eiters": 5000, **extra}
    if fmt == "zip":
        torch.save(checkpoint, path)
    elif fmt == "legacy":
        torch.save(checkpoint, path, pickle_protocol=2, _use_new_zipfile_serialization=False)
    else:
        torch.save(checkpoint, path, pickle_module=_python2_pickle_module(), pickle_protocol=2,
                   _use_new_zipfile_serialization=False)
    return path


def _plant(path: Path) -> None:
    path.write_text("the payload ran")


class CallsModuleFunction:
    """An object whose unpickling would call :func:`_plant` (what a malicious file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (_plant, (self.marker,))
