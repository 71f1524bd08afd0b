"""Tiny test data, written one way for every test: SCAN-layout raw splits, prepared HDF5
splits and released-style vocabulary files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from hsc.data.store import write_split
from hsc.data.tokenizer import tokenize_all
from hsc.data.vocab import EncodedCaptions, Vocabulary

WORDS = ["a", "dog", "runs", "on", "grass", "red", "ball", "man", "the"]


def write_raw_split(raw: Path, split: str, n_images: int, captions_per_image: int = 5, regions: int = 4,
                    dim: int = 8) -> np.ndarray:
    """``<split>_ims.npy`` (random features, the same for the same split and size) and
    ``<split>_caps.txt`` (six words of :data:`WORDS` a line); returns the features."""
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(split) * 100 + n_images)
    features = rng.standard_normal((n_images, regions, dim)).astype(np.float32)
    np.save(raw / f"{split}_ims.npy", features)
    lines = [" ".join(rng.choice(WORDS, 6)) for _ in range(n_images * captions_per_image)]
    (raw / f"{split}_caps.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return features


class ArrayFeatures:
    """An in-memory feature source for :func:`hsc.data.store.write_split`; records the blocks asked for."""

    def __init__(self, features: np.ndarray) -> None:
        self.features = features
        self.features_path = Path("memory_ims.npy")
        _, self.regions, self.feat_dim = features.shape
        self.blocks: list[tuple[int, int]] = []

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        self.blocks.append((start, stop))
        return self.features[start:stop]


def encode(captions: Iterable[str], min_count: int = 1) -> EncodedCaptions:
    """Captions encoded with a vocabulary built from them (words seen ``min_count`` times)."""
    table = tokenize_all(captions)
    return Vocabulary.from_counts(table.counts(), min_count=min_count).encode_table(table)


def random_captions(rng: np.random.Generator, n_captions: int, vocab_size: int) -> EncodedCaptions:
    """Captions of 3 to 8 random non-special word ids."""
    lengths = rng.integers(3, 9, n_captions)
    tokens = rng.integers(4, vocab_size, int(lengths.sum())).astype(np.int32)
    return EncodedCaptions(tokens=tokens, offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                           n_words=int(lengths.sum()), n_unknown=0)


def write_h5_split(path: Path, features: np.ndarray | ArrayFeatures, captions: EncodedCaptions,
                   caption_image: Optional[np.ndarray] = None, dataset: str = "synthetic",
                   vocab_sha256: str = "a" * 64, vocab_size: int = 20, feature_dtype: str = "float32") -> Path:
    """A prepared split at ``path`` (its split named by the file name); captions belong to
    images in order, the same number each, unless ``caption_image`` says otherwise."""
    source = features if isinstance(features, ArrayFeatures) else ArrayFeatures(features)
    n_images, n_captions = len(source.features), len(captions.offsets) - 1
    if caption_image is None:
        caption_image = np.arange(n_captions) // (n_captions // n_images)
    attrs = split_attrs(path.stem, dataset, vocab_sha256, vocab_size, n_captions // n_images)
    write_split(path, source, n_images, captions, caption_image, attrs, feature_dtype=feature_dtype)
    return path


def split_attrs(split: str, dataset: str = "synthetic", vocab_sha256: str = "a" * 64, vocab_size: int = 20,
                captions_per_image: int = 5) -> dict:
    """The attributes :func:`hsc.data.store.write_split` requires."""
    return {"dataset": dataset, "split": split, "tokenizer": "test", "vocab_sha256": vocab_sha256,
            "vocab_size": vocab_size, "source_sha256": "{}", "captions_per_image": captions_per_image}


def released_vocab(words: list[str]) -> dict:
    """A vocabulary in the released SCAN / LHSC JSON layout."""
    return {"word2idx": {w: i for i, w in enumerate(words)},
            "idx2word": {str(i): w for i, w in enumerate(words)}, "idx": len(words)}


def write_released_vocab(path: Path, words: list[str]) -> Path:
    path.write_text(json.dumps(released_vocab(words)), encoding="utf-8")
    return path
