"""Reading and checking SCAN's precomputed files: ``{split}_ims.npy`` and ``{split}_caps.txt``.

Optional beside them: ``{split}_ids.txt`` (SCAN's COCO archive: the COCO image id of each
feature row) and, from :mod:`hsc.data.coco_format`, ``{split}_caption_image.npy`` (any number
of captions per image), ``{split}_image_ids.npy`` and ``{split}_caption_ids.npy``.

Features files are tens of GB, so they are only ever memory-mapped and read in blocks of rows;
caption files are streamed line by line. Every problem is one :class:`HscError` line naming
the file (and the line or image row).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from hsc.errors import HscError

SPLITS = ("train", "dev", "test", "testall")
REQUIRED_SPLITS = ("train", "dev", "test")
CAPTIONS_PER_IMAGE = 5
_READ_BYTES = 1 << 20


def features_file(raw: Path, split: str) -> Path:
    return raw / f"{split}_ims.npy"


def captions_file(raw: Path, split: str) -> Path:
    return raw / f"{split}_caps.txt"


def find_splits(raw: Path) -> list[str]:
    """The splits of ``raw`` that have both files, in :data:`SPLITS` order; train, dev and test are required."""
    if not raw.is_dir():
        raise HscError(f"{raw}: no such directory; run `hsc download` first (or pass --raw)")
    present = []
    for split in SPLITS:
        files = (features_file(raw, split), captions_file(raw, split))
        missing = [path for path in files if not path.is_file()]
        if not missing:
            present.append(split)
        elif len(missing) == 1:
            other = files[1 - files.index(missing[0])]
            raise HscError(f"{missing[0]}: missing, though {other.name} exists; re-download the dataset")
        elif split in REQUIRED_SPLITS:
            raise HscError(f"{missing[0]}: missing; a SCAN-layout directory needs {split}_ims.npy and "
                           f"{split}_caps.txt for each of {', '.join(REQUIRED_SPLITS)}")
    return present


@dataclass(frozen=True)
class SplitIds:
    """COCO-style ids of a split's feature rows and captions, and where they came from."""

    image_ids: np.ndarray  # (rows,) int64
    caption_ids: np.ndarray  # (captions,) int64
    source: str  # stored as the HDF5 attribute ``id_source``


@dataclass(frozen=True)
class RawSplit:
    """One split's raw files, checked for shape and caption count (not yet for values)."""

    name: str
    features_path: Path
    captions_path: Path
    n_rows: int
    regions: int
    feat_dim: int
    n_captions: int
    captions_per_image: int  # 5 (caption j -> row j // 5), 1 (one row per caption), 0 (caption_image.npy)
    mapping: np.ndarray | None  # (captions,) int64 from {split}_caption_image.npy, else None
    ids: SplitIds

    def caption_image(self, n_captions: int) -> np.ndarray:
        """The feature row of each of the first ``n_captions`` captions."""
        if self.mapping is not None:
            return self.mapping[:n_captions]
        return np.arange(n_captions, dtype=np.int64) // self.captions_per_image

    def image_of_caption(self) -> np.ndarray:
        """The image (not row: SCAN's per-caption rows repeat an image five times) of each caption."""
        if self.captions_per_image == 1:
            return np.arange(self.n_captions, dtype=np.int64) // CAPTIONS_PER_IMAGE
        return self.caption_image(self.n_captions)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as an in-memory array, after checking they are all finite."""
        # A fresh mapping per block: pages touched through a long-lived mapping stay in the
        # process's resident set, so one mapping over the whole file would grow to its size.
        block = np.array(_load_npy(self.features_path)[start:stop])
        bad = first_non_finite(block)
        if bad is not None:
            raise HscError(f"{self.features_path}: image row {start + bad} holds NaN or inf; "
                           f"the file is corrupt, re-download it")
        return block

    def captions(self) -> Iterator[str]:
        """The captions, streamed from the file and checked line by line."""
        return iter_captions(self.captions_path)


def open_split(raw: Path, split: str) -> RawSplit:
    """Check one split's files (header, shape, caption count) without reading the features."""
    features_path, captions_path = features_file(raw, split), captions_file(raw, split)
    features = _load_npy(features_path)
    if features.ndim != 3:
        raise HscError(f"{features_path}: features must be 3-D (images, regions, dims), got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.floating):
        raise HscError(f"{features_path}: features must be floating point, got {features.dtype}")
    n_rows, regions, feat_dim = features.shape
    if n_rows == 0:
        raise HscError(f"{features_path}: holds no images; re-download the dataset")
    n_captions = count_lines(captions_path)
    mapping = _load_ids(raw / f"{split}_caption_image.npy", n_captions, captions_path.name)
    if mapping is not None:
        if mapping.min() < 0 or mapping.max() >= n_rows:
            raise HscError(f"{raw / f'{split}_caption_image.npy'}: points outside the {n_rows} rows of "
                           f"{features_path.name}; re-run `hsc download`")
        per_image = 0
    elif n_captions == CAPTIONS_PER_IMAGE * n_rows:
        per_image = CAPTIONS_PER_IMAGE
    elif n_captions == n_rows:
        per_image = 1
    else:
        raise HscError(f"{captions_path}: {n_captions} captions for {n_rows} images in {features_path.name}; "
                       f"expected {CAPTIONS_PER_IMAGE * n_rows} (5 per image) or {n_rows} (one row per caption)")
    return RawSplit(split, features_path, captions_path, n_rows, regions, feat_dim, n_captions, per_image,
                    mapping, _read_ids(raw, split, n_rows, n_captions))


def _read_ids(raw: Path, split: str, n_rows: int, n_captions: int) -> SplitIds:
    """The split's ids: from coco_format's .npy files, SCAN's ``{split}_ids.txt``, or row / caption indices."""
    image_ids = _load_ids(raw / f"{split}_image_ids.npy", n_rows, f"{split}_ims.npy rows")
    caption_ids = _load_ids(raw / f"{split}_caption_ids.npy", n_captions, f"{split}_caps.txt")
    if image_ids is not None and caption_ids is not None:
        return SplitIds(image_ids, caption_ids, "coco ids (image and caption annotation ids)")
    indices = np.arange(n_captions, dtype=np.int64)
    scan_ids = raw / f"{split}_ids.txt"
    if scan_ids.is_file():
        return SplitIds(_read_scan_ids(scan_ids, n_rows, n_captions), indices,
                        f"image ids from {scan_ids.name}; caption ids are caption indices")
    return SplitIds(np.arange(n_rows, dtype=np.int64), indices, "row and caption indices")


def _read_scan_ids(path: Path, n_rows: int, n_captions: int) -> np.ndarray:
    """SCAN's ids file: one image id per feature row, or one per caption (five alike in a row)."""
    try:
        ids = np.array([int(line) for line in path.read_text(encoding="utf-8").split()], dtype=np.int64)
    except ValueError:
        raise HscError(f"{path}: every line must hold one integer image id; re-download the dataset") from None
    if len(ids) == n_captions == CAPTIONS_PER_IMAGE * n_rows and (ids.reshape(n_rows, -1) == ids[::5, None]).all():
        return ids[::CAPTIONS_PER_IMAGE]
    if len(ids) != n_rows:
        raise HscError(f"{path}: {len(ids)} ids for {n_rows} feature rows; re-download the dataset")
    return ids


def _load_ids(path: Path, expected: int, what: str) -> np.ndarray | None:
    """An optional (expected,) integer .npy file, or None when absent."""
    if not path.is_file():
        return None
    array = _load_npy(path)
    if array.shape != (expected,) or not np.issubdtype(array.dtype, np.integer):
        raise HscError(f"{path}: expected {expected} integers (one per {what}), got {array.dtype} {array.shape}; "
                       f"re-run `hsc download`")
    return np.asarray(array, dtype=np.int64)


def check_same_feature_dims(splits: Sequence[RawSplit]) -> None:
    """Every split must have the first split's regions x dims (one model reads them all)."""
    first = splits[0]
    for split in splits[1:]:
        if (split.regions, split.feat_dim) != (first.regions, first.feat_dim):
            raise HscError(f"{split.features_path}: features are {split.regions} x {split.feat_dim} per image but "
                           f"{first.features_path.name} has {first.regions} x {first.feat_dim}; all splits must match")


def first_non_finite(rows: np.ndarray) -> int | None:
    """The index of the first row of ``rows`` holding a NaN or inf, or None when all are finite."""
    finite = np.isfinite(rows).reshape(len(rows), -1).all(axis=1)
    return None if finite.all() else int(np.argmin(finite))


def count_lines(path: Path) -> int:
    """Lines in a text file, counting a last line that lacks its newline."""
    lines, last = 0, b"\n"
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_READ_BYTES):
                lines += block.count(b"\n")
                last = block[-1:]
    except FileNotFoundError:
        raise HscError(f"{path}: missing; re-download the dataset") from None
    return lines + (last != b"\n")


def iter_captions(path: Path) -> Iterator[str]:
    """Each line without its newline; an undecodable or blank line is an error naming its number."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise HscError(f"{path}: missing; re-download the dataset") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.endswith(b"\n"):
                line = line[:-1]
            try:
                # utf-8-sig on the first line drops a byte-order mark (Windows editors add one),
                # which would otherwise glue itself to the first word and make it <unk>.
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise HscError(f"{path}: line {number} is not UTF-8 (byte {exc.start + 1}); "
                               f"fix or re-download the file") from None
            if not text.strip():
                raise HscError(f"{path}: line {number} is empty; every line must hold one caption")
            yield text


def _load_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` file, turning numpy's errors into a line that says what to do."""
    if not path.is_file():
        raise HscError(f"{path}: missing; re-download the dataset")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        expected = _npy_expected_size(path)
        if expected is not None and path.stat().st_size < expected:
            raise HscError(f"{path}: truncated ({path.stat().st_size:,} of {expected:,} bytes); "
                           f"the download was cut short, re-download it") from None
        raise HscError(f"{path}: not a readable .npy array ({exc}); re-download it") from None


def _npy_expected_size(path: Path) -> int | None:
    """The size a ``.npy`` file's header promises, or None if the header itself is unreadable."""
    try:
        with open(path, "rb") as handle:
            fmt = np.lib.format
            version = fmt.read_magic(handle)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            return handle.tell() + int(np.prod(shape)) * dtype.itemsize
    except (ValueError, EOFError, OSError):
        return None
