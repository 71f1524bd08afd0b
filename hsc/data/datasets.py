"""The registry of raw datasets: where each comes from and which files it needs.

SCAN's precomputed bottom-up-attention features ship as one archive, ``data.zip`` (tens of
GB), at :data:`SCAN_DATA_URL`. That link has been dead at times; known mirrors are the Kaggle
dataset ``kuanghueilee/scan-features`` and copies on cloud drives, so every source can be
overridden by ``download.mirror`` (an http(s):// or file:// URL of the zip, a local zip, or a
directory laid out like SCAN's ``data/<name>/``), and the files can be placed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hsc.errors import HscError

SCAN_DATA_URL = "https://scanproject.blob.core.windows.net/scan-data/data.zip"

FILE_KINDS = ("ims.npy", "caps.txt")  # features (N, R, D) float32; 5 captions per image


@dataclass(frozen=True)
class Source:
    """One dataset: its archive URL (``None`` when generated locally) and its splits."""

    dataset: str
    url: Optional[str]
    splits: tuple[str, ...]

    @property
    def files(self) -> tuple[str, ...]:
        """The flat file names the raw layout holds, e.g. ``train_ims.npy``."""
        return tuple(f"{split}_{kind}" for split in self.splits for kind in FILE_KINDS)

    def missing_in(self, directory: Path) -> list[str]:
        """The names of ``files`` that ``directory`` lacks, in order."""
        return [name for name in self.files if not (directory / name).is_file()]

    def member(self, file_name: str) -> str:
        """The archive member that holds ``file_name`` (SCAN's ``data/<name>/`` layout)."""
        return f"data/{self.dataset}/{file_name}"


SOURCES: dict[str, Source] = {
    "synthetic": Source("synthetic", None, ("train", "dev", "test")),
    "f30k_precomp": Source("f30k_precomp", SCAN_DATA_URL, ("train", "dev", "test")),
    # `testall` is the 5K test set; `test` is its first 1K fold.
    "coco_precomp": Source("coco_precomp", SCAN_DATA_URL, ("train", "dev", "test", "testall")),
    # Your own COCO-format captions, split file and features (params section coco_format).
    "coco_format": Source("coco_format", None, ("train", "dev", "test")),
}


def source_for(dataset: str) -> Source:
    """The registered source of ``dataset``; an unknown name is a user error."""
    try:
        return SOURCES[dataset]
    except KeyError:
        known = ", ".join(SOURCES)
        raise HscError(f"dataset '{dataset}' is unknown; pick one of: {known}") from None
