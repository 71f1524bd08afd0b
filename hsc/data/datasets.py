"""The datasets hsc knows, each in one place: where it comes from, its splits, its protocols.

Params (``dataset``), the download stage and evaluation all read :data:`DATASETS`, so adding a
dataset is one entry here.

SCAN's precomputed bottom-up-attention features ship as one archive, ``data.zip`` (tens of
GB), at :data:`SCAN_DATA_URL`. That link has been dead at times; known mirrors are the Kaggle
dataset ``kuanghueilee/scan-features`` and copies on cloud drives, so every source can be
overridden by ``download.mirror`` (an http(s):// or file:// URL of the zip, a local zip, or a
directory laid out like SCAN's ``data/<name>/``), and the files can be placed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

from hsc.errors import HscError

SCAN_DATA_URL = "https://scanproject.blob.core.windows.net/scan-data/data.zip"

FILE_KINDS = ("ims.npy", "caps.txt")  # features (N, R, D) float32; 5 captions per image


@dataclass(frozen=True)
class Protocol:
    """A named protocol: the whole ``split`` when ``folds`` is 1, else the mean over folds."""

    name: str
    split: str
    folds: int = 1


def _always(images: int) -> bool:
    return True


@dataclass(frozen=True)
class ProtocolRule:
    """A protocol and when it applies, given the image count of its (scored) split."""

    protocol: Protocol
    applies: Callable[[int], bool] = _always


@dataclass(frozen=True)
class Dataset:
    """One dataset: its archive URL (``None`` when generated or converted locally), its splits,
    the split evaluation scores (the first of ``scored_splits`` that was prepared) and its protocols."""

    name: str
    url: Optional[str]
    splits: tuple[str, ...]
    protocols: tuple[ProtocolRule, ...]
    scored_splits: tuple[str, ...] = ("test",)

    @property
    def files(self) -> tuple[str, ...]:
        """The flat file names the raw layout holds, e.g. ``train_ims.npy``."""
        return tuple(f"{split}_{kind}" for split in self.splits for kind in FILE_KINDS)

    def missing_in(self, directory: Path) -> list[str]:
        """The names of ``files`` that ``directory`` lacks, in order."""
        return [name for name in self.files if not (directory / name).is_file()]

    def member(self, file_name: str) -> str:
        """The archive member that holds ``file_name`` (SCAN's ``data/<name>/`` layout)."""
        return f"data/{self.name}/{file_name}"


_DATASETS = (
    Dataset("synthetic", None, ("train", "dev", "test"), (
        ProtocolRule(Protocol("synthetic_full", "test")),
        ProtocolRule(Protocol("synthetic_5fold", "test", folds=5), lambda images: images % 5 == 0),
    )),
    Dataset("f30k_precomp", SCAN_DATA_URL, ("train", "dev", "test"), (ProtocolRule(Protocol("f30k_1k", "test")),)),
    # `testall` is the 5K test set; `test` is its first 1K fold, scored only when testall is absent.
    Dataset("coco_precomp", SCAN_DATA_URL, ("train", "dev", "test", "testall"), (
        ProtocolRule(Protocol("coco_5k", "testall")),
        ProtocolRule(Protocol("coco_1k", "testall", folds=5)),
        ProtocolRule(Protocol("coco_1k", "test")),
    ), scored_splits=("testall", "test")),
    # Your own COCO-format captions, split file and features (params section coco_format);
    # COCO's 5K test split also gets its 5-fold 1K protocol.
    Dataset("coco_format", None, ("train", "dev", "test"), (
        ProtocolRule(Protocol("coco_format_test", "test")),
        ProtocolRule(Protocol("coco_format_1k", "test", folds=5), lambda images: images == 5000),
    )),
)
DATASETS: dict[str, Dataset] = {dataset.name: dataset for dataset in _DATASETS}
DatasetName = Literal[tuple(DATASETS)]  # params' `dataset` key accepts exactly these names


def dataset_for(name: str, where: str = "") -> Dataset:
    """The registered dataset called ``name``; an unknown name is a user error (``where``: its source)."""
    try:
        return DATASETS[name]
    except KeyError:
        prefix = f"{where}: " if where else ""
        raise HscError(f"{prefix}unknown dataset '{name}' (expected one of: {', '.join(DATASETS)})") from None
