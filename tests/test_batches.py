"""Torch datasets over a prepared split: item contents, collate shapes and padding, workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hsc.data.batches import (PairDataset, collate_captions,
                              collate_pairs)
from hsc.data.store import SplitReader
from factories import encode, write_h5_split

CAPTIONS = ["a dog", "a dog runs on grass", "a cat", "cat", "dog on a mat", "a dog and a cat"]


@pytest.fixture
def features() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 4, 6)).astype(np.float32)


@pytest.fixture
def reader(tmp_path: Path, features: np.ndarray) -> SplitReader:
    return SplitReader(write_h5_split(tmp_path / "train.h5", features, encode(CAPTIONS), vocab_size=10))


def test_pair_items(reader: SplitReader, features: np.ndarray):
    dataset = PairDataset(reader)
    assert len(dataset) == 6
    image, tokens, caption_id, image_id, units = dataset[3]
    assert image.dtype == torch.float32 and image.shape == (4, 6)
    assert torch.equal(image, torch.from_numpy(features[1]))
    assert tokens.dtype == torch.int64 and tokens.tolist() == reader.caption(3).tolist()
    assert (caption_id, image_id) == (3, 1)
    assert units is None  # prepared without prepare.phrases


def test_collate_pairs_pads_with_zero(reader: SplitReader, features: np.ndarray):
    dataset = PairDataset(reader)
    batch = collate_pairs([dataset[j] for j in (1, 0, 5)])
    assert batch.images.shape == (3, 4, 6) and batch.images.dtype == torch.float32
    lengths = [len(reader.caption(j)) for j in (1, 0, 5)]
    assert batch.lengths.tolist() == lengths and batch.lengths.dtype == torch.int64
    assert batch.tokens.shape == (3, max(lengths)) and batch.tokens.dtype == torch.int64
    for row, j in enumerate((1, 0, 5)):
        assert batch.tokens[row, : lengths[row]].tolist() == reader.caption(j).tolist()
        assert not batch.tokens[row, lengths[row]:].any()
    assert batch.caption_ids.tolist() == [1, 0, 5] and batch.image_ids.tolist() == [0, 0, 2]
    assert torch.equal(batch.images[2], torch.from_numpy(features[2]))


def test_collate_captions_pads_with_pad_id(reader: SplitReader):
    tokens, lengths = collate_captions([torch.from_numpy(reader.caption(0)), torch.from_numpy(reader.caption(1))])
    assert tokens.shape == (2, 7) and lengths.tolist() == [4, 7]
    assert tokens[0, 4:].tolist() == [0, 0, 0]


def test_loader_with_workers_after_parent_opened_the_file(reader: SplitReader, features: np.ndarray):
    reader.features([0])  # the parent's open handle must not be reused by forked workers
    loader = DataLoader(PairDataset(reader), batch_size=2, num_workers=2, collate_fn=collate_pairs,
                        multiprocessing_context="fork")
    batches = list(loader)
    assert sum(len(b.caption_ids) for b in batches) == 6
    images = torch.cat([b.images for b in batches])
    assert torch.equal(images, torch.from_numpy(features[np.arange(6) // 2]))
