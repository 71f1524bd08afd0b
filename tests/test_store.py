"""The HDF5 split file: layout, block-wise copy, reading back, and rejecting foreign files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from hsc.data import store
from hsc.data.precomp import open_split
from hsc.data.store import SplitReader, write_split
from hsc.errors import HscError
from hsc.hashing import sha256_files
from factories import ArrayFeatures, encode, split_attrs, write_h5_split, write_raw_split

CAPTIONS = ["a dog runs", "a red dog", "the cat", "a cat sits on a mat", "dog", "cat"]


def make_split(path: Path, features: np.ndarray, feature_dtype: str = "float32") -> None:
    write_h5_split(path, features, encode(CAPTIONS, min_count=3), vocab_sha256="abc",  # words a, dog, cat
                   feature_dtype=feature_dtype)


@pytest.fixture
def features() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)


def test_layout_follows_the_architecture(tmp_path: Path, features: np.ndarray):
    make_split(tmp_path / "test.h5", features)
    with h5py.File(tmp_path / "test.h5", "r") as h5:
        assert h5["features"].chunks == (1, 4, 5) and h5["features"].dtype == np.float32
        assert h5["tokens"].dtype == np.int32
        assert h5["offsets"].dtype == np.int64 and h5["offsets"].shape == (len(CAPTIONS) + 1,)
        assert h5["caption_image"].dtype == np.int64
        assert set(store.ATTRIBUTES) <= set(h5.attrs) and h5.attrs["format_version"] == store.FORMAT_VERSION


def test_reader_returns_features_in_requested_order(tmp_path: Path, features: np.ndarray):
    make_split(tmp_path / "test.h5", features)
    reader = SplitReader(tmp_path / "test.h5")
    assert (reader.n_images, reader.n_captions, reader.regions, reader.feat_dim) == (3, 6, 4, 5)
    assert reader.vocab_sha256 == "abc" and reader.attrs["split"] == "test"
    batch = reader.features([2, 0, 2, 1])
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, features[[2, 0, 2, 1]])
    assert reader.features([]).shape == (0, 4, 5)
    with pytest.raises(IndexError):
        reader.features([3])


def test_reader_returns_captions(tmp_path: Path, features: np.ndarray):
    make_split(tmp_path / "test.h5", features)
    reader = SplitReader(tmp_path / "test.h5")
    caption = reader.caption(1)  # "a red dog": <start> a <unk> dog <end>; "cat" (5) ties "dog" (6) and sorts first
    assert caption.dtype == np.int64 and caption.tolist() == [1, 4, 3, 6, 2]
    assert reader.caption_image.tolist() == [0, 0, 1, 1, 2, 2]


def test_float16_storage_reads_back_as_float32(tmp_path: Path, features: np.ndarray):
    make_split(tmp_path / "test.h5", features, feature_dtype="float16")
    reader = SplitReader(tmp_path / "test.h5")
    batch = reader.features([0, 1, 2])
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, features, rtol=1e-3, atol=1e-3)


def test_float16_overflow_is_a_user_error(tmp_path: Path, features: np.ndarray):
    features[1, 0, 0] = 1e6
    with pytest.raises(HscError, match=r"^memory_ims.npy: image row 1 .*float16 range.*prepare.feature_dtype"):
        make_split(tmp_path / "test.h5", features, feature_dtype="float16")
    assert not list(tmp_path.iterdir())


def test_features_are_copied_in_bounded_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    features = np.random.default_rng(1).standard_normal((10, 4, 5)).astype(np.float32)
    monkeypatch.setattr(store, "BLOCK_BYTES", 3 * 4 * 5 * 4)  # three images per block
    source = ArrayFeatures(features)
    write_h5_split(tmp_path / "train.h5", source, encode(f"caption {j}" for j in range(10)))
    assert source.blocks == [(0, 3), (3, 6), (6, 9), (9, 10)]
    np.testing.assert_array_equal(SplitReader(tmp_path / "train.h5").features(range(10)), features)


def test_nan_in_raw_features_leaves_no_file(tmp_path: Path):
    raw = tmp_path / "raw"
    bad = write_raw_split(raw, "test", 2)
    bad[1, 2, 3] = np.nan
    np.save(raw / "test_ims.npy", bad)
    split = open_split(raw, "test")
    with pytest.raises(HscError, match="test_ims.npy: image row 1 holds NaN"):
        write_split(tmp_path / "out" / "test.h5", split, 2, encode(split.captions()), split.caption_image(10),
                    split_attrs("test"))
    assert not list((tmp_path / "out").iterdir())


def test_sha256_files_hashes_whole_files(tmp_path: Path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100_000)
    assert sha256_files([path]) == {"a.bin": hashlib.sha256(b"x" * 100_000).hexdigest()}


def test_reader_reopens_in_a_new_process(tmp_path: Path, features: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    make_split(tmp_path / "test.h5", features)
    reader = SplitReader(tmp_path / "test.h5")
    reader.features([0])
    first = reader._file
    assert reader._handle() is first
    monkeypatch.setattr(store.os, "getpid", lambda: -1)  # as seen from a forked worker
    assert reader._handle() is not first
    np.testing.assert_array_equal(reader.features([1]), features[[1]])


def foreign_files(tmp_path: Path, features: np.ndarray) -> dict[str, Path]:
    """Files that are not hsc splits, by what is wrong with them."""
    text = tmp_path / "text.h5"
    text.write_text("not hdf5", encoding="utf-8")
    made = {}
    for what in ("no tokens", "no vocab_sha256", "old version"):
        path = tmp_path / f"{what.replace(' ', '_')}.h5"
        make_split(path, features)
        with h5py.File(path, "a") as h5:
            if what == "no tokens":
                del h5["tokens"]
            elif what == "no vocab_sha256":
                del h5.attrs["vocab_sha256"]
            else:
                h5.attrs["format_version"] = 0
        made[what] = path
    return {"not hdf5": text, **made}


@pytest.mark.parametrize("what, match", [
    ("not hdf5", "not an HDF5 file"),
    ("no tokens", "lacks 'tokens'"),
    ("no vocab_sha256", "lacks 'vocab_sha256'"),
    ("old version", "format_version 0"),
])
def test_foreign_files_say_rerun_prepare(tmp_path: Path, features: np.ndarray, what: str, match: str):
    path = foreign_files(tmp_path, features)[what]
    with pytest.raises(HscError, match=match) as info:
        SplitReader(path)
    assert str(info.value).startswith(str(path)) and "hsc prepare" in str(info.value)


def test_missing_split_file(tmp_path: Path):
    with pytest.raises(HscError, match="absent.h5: no such prepared split; run `hsc prepare`"):
        SplitReader(tmp_path / "absent.h5")
