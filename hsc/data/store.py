"""The prepared HDF5 file of one split: written atomically in bounded memory, read lazily.

Layout (docs/architecture.md): ``features`` (N, R, D) chunked per image, ``tokens`` int32
concatenated with ``offsets`` int64 (C + 1), ``caption_image`` int64 (C), ``image_ids`` (N)
and ``caption_ids`` (C) int64, and attributes naming the dataset, split, tokenizer,
vocabulary, raw sources and where the ids came from (``id_source``). With
``prepare.phrases``, also ``entity_spans`` (E, 3) and ``triple_spans`` (T, 7) int64 and the
``phrase_parser`` attribute (:mod:`hsc.data.phrases`); read when present.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NoReturn, Protocol

import h5py
import numpy as np

from hsc.atomic import atomic_path
from hsc.data.phrases import PhraseSpans
from hsc.data.precomp import SplitIds, first_non_finite
from hsc.data.vocab import EncodedCaptions
from hsc.errors import HscError
from hsc.progress import bar

FORMAT_VERSION = 2  # 2: image_ids, caption_ids and id_source
DATASETS = ("features", "tokens", "offsets", "caption_image", "image_ids", "caption_ids")
ATTRIBUTES = ("dataset", "split", "format_version", "tokenizer", "vocab_sha256", "vocab_size",
              "source_sha256", "captions_per_image", "id_source")
BLOCK_BYTES = 16 << 20  # features copied this many bytes at a time: bounds peak memory


class FeatureSource(Protocol):
    """Rows of region features, read a block at a time (e.g. :class:`hsc.data.precomp.RawSplit`)."""

    features_path: Path  # named in errors
    regions: int
    feat_dim: int

    def read_rows(self, start: int, stop: int) -> np.ndarray: ...


def write_split(path: Path, source: FeatureSource, n_images: int, captions: EncodedCaptions,
                caption_image: np.ndarray, attrs: Mapping[str, Any], feature_dtype: str = "float32",
                ids: SplitIds | None = None, phrases: PhraseSpans | None = None) -> None:
    """Write one split's HDF5 file (atomically), copying features in blocks of images.

    ``ids`` default to the row and caption indices (data without COCO ids); ``phrases``, when
    given, are stored as ``entity_spans`` and ``triple_spans`` (name the parser in ``attrs``).
    """
    ids = ids or SplitIds(np.arange(n_images), np.arange(len(caption_image)), "row and caption indices")
    if len(ids.image_ids) != n_images or len(ids.caption_ids) != len(caption_image):
        raise ValueError("write_split needs one image id per image and one caption id per caption")
    missing = set(ATTRIBUTES) - {"format_version", "id_source"} - set(attrs)
    if missing:
        raise ValueError(f"write_split needs attributes {sorted(missing)}")
    dtype = np.dtype(feature_dtype)
    needed = (n_images * source.regions * source.feat_dim * dtype.itemsize + captions.tokens.size * 4
              + captions.offsets.size * 8 + caption_image.size * 8 + (len(ids.image_ids) + len(ids.caption_ids)) * 8)
    with atomic_path(path, needed_bytes=needed) as tmp, _GuardedFile(tmp) as handle:
        with h5py.File(handle, "w") as h5:
            h5.attrs.update({**attrs, "format_version": FORMAT_VERSION, "id_source": ids.source})
            h5.create_dataset("tokens", data=captions.tokens.astype(np.int32, copy=False))
            h5.create_dataset("offsets", data=captions.offsets.astype(np.int64, copy=False))
            h5.create_dataset("caption_image", data=caption_image.astype(np.int64, copy=False))
            h5.create_dataset("image_ids", data=np.asarray(ids.image_ids, dtype=np.int64))
            h5.create_dataset("caption_ids", data=np.asarray(ids.caption_ids, dtype=np.int64))
            if phrases is not None:
                h5.create_dataset("entity_spans", data=phrases.entities)
                h5.create_dataset("triple_spans", data=phrases.triples)
            features = h5.create_dataset("features", shape=(n_images, source.regions, source.feat_dim),
                                         dtype=dtype, chunks=(1, source.regions, source.feat_dim))
            _copy_features(source, features, label=str(attrs["split"]), check=handle.raise_failure)
        handle.raise_failure()


class _GuardedFile:
    """The file h5py writes through; a failed write (a full disk) never reaches HDF5.

    After a failed write HDF5 keeps dirty data it cannot flush, and h5py crashes the process
    (segfault) when closing such a file. So the first error is kept, later writes are dropped,
    and :meth:`raise_failure` raises it once HDF5 can stop or has closed the file cleanly.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "w+b", buffering=0)
        self._error: OSError | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while self._error is None and view:
            try:
                view = view[self._file.write(view):]
            except OSError as exc:
                self._error = exc
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def truncate(self, size: int | None = None) -> int:
        if self._error is None:
            self._file.truncate(size)
        return self._file.tell() if size is None else size

    def flush(self) -> None:
        """Nothing is buffered here: every write went straight to the file."""

    def raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> "_GuardedFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()


def _copy_features(source: FeatureSource, target: h5py.Dataset, label: str, check: Callable[[], None]) -> None:
    """Copy the features a block at a time, calling ``check`` after each (it raises a failed write)."""
    n_images = target.shape[0]
    block = max(1, BLOCK_BYTES // (source.regions * source.feat_dim * target.dtype.itemsize))
    with bar(unit="img") as progress:
        task = progress.add_task(f"{label} features", total=n_images)
        for start in range(0, n_images, block):
            stop = min(start + block, n_images)
            with np.errstate(over="ignore"):  # an overflow to inf is reported just below
                rows = source.read_rows(start, stop).astype(target.dtype, copy=False)
            bad = first_non_finite(rows)  # the source rows are finite, so this is the cast's overflow
            if bad is not None:
                _fail_overflow(source.features_path, start + bad, target.dtype)
            target[start:stop] = rows
            check()
            progress.advance(task, stop - start)


def _fail_overflow(path: Path, row: int, dtype: np.dtype) -> NoReturn:
    what = f"{path}: image row {row} holds values beyond the {dtype} range (max {np.finfo(dtype).max:.4g})"
    if dtype == np.float16:
        raise HscError(f"{what}; set prepare.feature_dtype to float32 in params.yaml")
    raise HscError(f"{what}; these are not region features as SCAN stores them, rescale or re-extract them")


class SplitReader:
    """Read access to one prepared split, safe to hand to DataLoader workers.

    Captions (offsets, tokens, caption_image: small) are read into memory once; features are
    read per request. The HDF5 handle is opened on first use in each process, because an h5py
    handle inherited across ``fork`` is not safe to use.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        with self._open_checked() as h5:
            self.attrs: dict[str, Any] = {key: _plain(value) for key, value in h5.attrs.items()}
            self.n_images, self.regions, self.feat_dim = h5["features"].shape
            self._tokens = h5["tokens"][()]
            self._offsets = h5["offsets"][()]
            self.caption_image: np.ndarray = h5["caption_image"][()]
            self.image_ids: np.ndarray = h5["image_ids"][()]
            self.caption_ids: np.ndarray = h5["caption_ids"][()]
            self.phrases = (PhraseSpans(h5["entity_spans"][()], h5["triple_spans"][()])
                            if "entity_spans" in h5 else None)  # prepared with prepare.phrases
        if len(self._offsets) != len(self.caption_image) + 1 or self._offsets[-1] != len(self._tokens):
            self._fail("captions are inconsistent (offsets, tokens and caption_image disagree)")
        if len(self.image_ids) != self.n_images or len(self.caption_ids) != len(self.caption_image):
            self._fail("ids are inconsistent (image_ids, caption_ids and the captions disagree)")
        if len(self.caption_image) and not 0 <= self.caption_image.min() <= self.caption_image.max() < self.n_images:
            self._fail("caption_image points outside features")

    @property
    def n_captions(self) -> int:
        return len(self.caption_image)

    @property
    def caption_lengths(self) -> np.ndarray:
        """(C,) tokens per caption, ``<start>`` and ``<end>`` included."""
        return np.diff(self._offsets)

    @property
    def vocab_sha256(self) -> str:
        return str(self.attrs["vocab_sha256"])

    @property
    def vocab_size(self) -> int:
        return int(self.attrs["vocab_size"])

    def caption(self, j: int) -> np.ndarray:
        """Caption ``j``'s ids, ``<start> ... <end>``, as int64."""
        return self._tokens[self._offsets[j]:self._offsets[j + 1]].astype(np.int64)

    def features(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """Features of the given images, (B, R, D) float32, in the order asked for."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) == 0:
            return np.empty((0, self.regions, self.feat_dim), dtype=np.float32)
        if indices.min() < 0 or indices.max() >= self.n_images:
            raise IndexError(f"{self.path}: image index out of range 0..{self.n_images - 1}")
        # h5py's fancy indexing needs increasing, unique indices
        unique, inverse = np.unique(indices, return_inverse=True)
        rows = self._handle()["features"][unique]
        return rows[inverse].astype(np.float32, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        # pickled into spawned workers: send the path and captions, never the open handle
        return {**self.__dict__, "_file": None, "_pid": None}

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def _open_checked(self) -> h5py.File:
        if not self.path.is_file():
            raise HscError(f"{self.path}: no such prepared split; run `hsc prepare` first")
        try:
            h5 = h5py.File(self.path, "r")
        except OSError:
            self._fail("not an HDF5 file")
        missing = [name for name in DATASETS if name not in h5] + [name for name in ATTRIBUTES if name not in h5.attrs]
        version = h5.attrs.get("format_version")
        if missing or version != FORMAT_VERSION:
            h5.close()
            self._fail(f"lacks {missing[0]!r}" if missing else f"has format_version {version}, not {FORMAT_VERSION}")
        return h5

    def _fail(self, what: str) -> NoReturn:
        raise HscError(f"{self.path}: {what}; not a split made by this hsc, re-run `hsc prepare`")


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value."""
    return value.item() if isinstance(value, np.generic) else value
