"""Torch datasets over a prepared split, and the collate functions that pad captions.

Every item reads only its own image from the HDF5 file, so memory grows with the batch,
never with the dataset.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch.utils.data import Dataset

from hsc.data.phrase_units import Unit, membership, split_units
from hsc.data.store import SplitReader
from hsc.data.vocab import PAD_ID

PairItem = tuple[torch.Tensor, torch.Tensor, int, int, "list[Unit] | None"]


class PairBatch(NamedTuple):
    """A training batch of image-caption pairs."""

    images: torch.Tensor  # (B, R, D) float32
    tokens: torch.Tensor  # (B, L) int64, padded with <pad> = 0
    lengths: torch.Tensor  # (B,) int64, tokens per caption incl. <start>/<end>
    caption_ids: torch.Tensor  # (B,) int64, caption index j in the split
    image_ids: torch.Tensor  # (B,) int64, image index of caption j
    # (B, P, L) bool, the tokens of each caption's parsed phrases (hsc.data.phrase_units); None
    # for a split prepared without prepare.phrases
    phrases: torch.Tensor | None = None

    def to(self, device: torch.device) -> "PairBatch":
        """The batch on ``device`` (non-blocking from pinned memory)."""
        return PairBatch(*(None if tensor is None else tensor.to(device, non_blocking=True) for tensor in self))


class PairDataset(Dataset):
    """One item per caption: (its image's features, its ids, caption index, image index, its phrase units or None)."""

    def __init__(self, reader: SplitReader) -> None:
        self.reader = reader
        self.units = split_units(reader)

    def __len__(self) -> int:
        return self.reader.n_captions

    def __getitem__(self, j: int) -> PairItem:
        image = int(self.reader.caption_image[j])
        features = torch.from_numpy(self.reader.features([image])[0])
        units = None if self.units is None else self.units[j]
        return features, torch.from_numpy(self.reader.caption(j)), int(j), image, units


def collate_pairs(items: Sequence[PairItem]) -> PairBatch:
    """Stack images and pad captions (and their phrase memberships) of :class:`PairDataset` items."""
    images, captions, caption_ids, image_ids, units = zip(*items)
    tokens, lengths = collate_captions(captions)
    return PairBatch(
        images=torch.stack(images),
        tokens=tokens,
        lengths=lengths,
        caption_ids=torch.tensor(caption_ids, dtype=torch.int64),
        image_ids=torch.tensor(image_ids, dtype=torch.int64),
        phrases=None if units[0] is None else membership(units, lengths, tokens.size(1)),
    )


def collate_captions(captions: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad with ``<pad>`` to the longest caption: (tokens (B, L) int64, lengths (B,) int64)."""
    lengths = torch.tensor([len(caption) for caption in captions], dtype=torch.int64)
    width = int(lengths.max()) if len(captions) else 0
    tokens = torch.full((len(captions), width), PAD_ID, dtype=torch.int64)
    for row, caption in enumerate(captions):
        tokens[row, : len(caption)] = caption
    return tokens, lengths
