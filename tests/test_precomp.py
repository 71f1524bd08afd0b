"""SCAN raw files: split discovery, shape and count checks, and one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsc.data import precomp
from hsc.data.tokenizer import tokenize
from hsc.errors import HscError
from factories import write_raw_split


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    for split in ("train", "dev", "test"):
        write_raw_split(tmp_path, split, 4, regions=3, dim=4)
    return tmp_path


def one_line_error(path: Path, match: str, call, *args) -> str:
    with pytest.raises(HscError, match=match) as info:
        call(*args)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_find_splits_requires_train_dev_test_and_takes_testall(raw: Path):
    assert precomp.find_splits(raw) == ["train", "dev", "test"]
    write_raw_split(raw, "testall", 2)
    assert precomp.find_splits(raw) == ["train", "dev", "test", "testall"]
    for name in ("test_ims.npy", "test_caps.txt"):
        (raw / name).unlink()
    one_line_error(raw / "test_ims.npy", "missing", precomp.find_splits, raw)


def test_find_splits_names_a_missing_partner(raw: Path):
    (raw / "dev_caps.txt").unlink()
    one_line_error(raw / "dev_caps.txt", "dev_ims.npy exists", precomp.find_splits, raw)


def test_find_splits_on_missing_directory(tmp_path: Path):
    one_line_error(tmp_path / "nowhere", "hsc download", precomp.find_splits, tmp_path / "nowhere")


def test_open_split_five_captions_per_image(raw: Path):
    split = precomp.open_split(raw, "train")
    assert (split.n_rows, split.regions, split.feat_dim, split.n_captions) == (4, 3, 4, 20)
    assert split.captions_per_image == 5
    assert split.caption_image(7).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert list(split.captions())[6] == (raw / "train_caps.txt").read_text(encoding="utf-8").splitlines()[6]


def test_open_split_one_row_per_caption(tmp_path: Path):
    write_raw_split(tmp_path, "dev", 6, captions_per_image=1)
    split = precomp.open_split(tmp_path, "dev")
    assert split.captions_per_image == 1
    assert split.caption_image(3).tolist() == [0, 1, 2]


def test_caption_count_must_be_five_or_one_per_image(raw: Path):
    with open(raw / "dev_caps.txt", "a", encoding="utf-8") as handle:
        handle.write("one caption too many\n")
    one_line_error(raw / "dev_caps.txt", "21 captions for 4 images", precomp.open_split, raw, "dev")


def test_read_rows_copies_the_requested_rows(raw: Path):
    features = np.load(raw / "train_ims.npy")
    rows = precomp.open_split(raw, "train").read_rows(1, 3)
    assert not isinstance(rows, np.memmap)
    np.testing.assert_array_equal(rows, features[1:3])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_name_file_and_row(raw: Path, bad: float):
    features = np.load(raw / "train_ims.npy")
    features[2, 1, 3] = bad
    np.save(raw / "train_ims.npy", features)
    split = precomp.open_split(raw, "train")
    np.testing.assert_array_equal(split.read_rows(0, 2), features[:2])
    one_line_error(raw / "train_ims.npy", "image row 2 holds NaN or inf", split.read_rows, 0, 4)


def test_features_must_be_3d_floats(raw: Path):
    np.save(raw / "test_ims.npy", np.zeros((4, 12), dtype=np.float32))
    one_line_error(raw / "test_ims.npy", r"3-D .* shape \(4, 12\)", precomp.open_split, raw, "test")
    np.save(raw / "test_ims.npy", np.zeros((4, 3, 4), dtype=np.int64))
    one_line_error(raw / "test_ims.npy", "floating point", precomp.open_split, raw, "test")


def test_truncated_features_say_redownload(raw: Path):
    data = (raw / "train_ims.npy").read_bytes()
    (raw / "train_ims.npy").write_bytes(data[:-10])
    one_line_error(raw / "train_ims.npy", "truncated .* re-download", precomp.open_split, raw, "train")


def test_garbage_features_file(raw: Path):
    (raw / "train_ims.npy").write_bytes(b"<html>not found</html>")
    one_line_error(raw / "train_ims.npy", "not a readable .npy", precomp.open_split, raw, "train")


def test_missing_files(tmp_path: Path):
    one_line_error(tmp_path / "dev_ims.npy", "missing", precomp.open_split, tmp_path, "dev")
    one_line_error(tmp_path / "dev_caps.txt", "missing", lambda: list(precomp.iter_captions(tmp_path / "dev_caps.txt")))


def test_feature_dims_must_agree_across_splits(raw: Path):
    write_raw_split(raw, "test", 4, regions=3, dim=5)
    splits = [precomp.open_split(raw, name) for name in ("train", "dev", "test")]
    one_line_error(raw / "test_ims.npy", "3 x 5 per image but train_ims.npy has 3 x 4",
                   precomp.check_same_feature_dims, splits)


def test_missing_final_newline_is_fine(tmp_path: Path):
    path = tmp_path / "test_caps.txt"
    path.write_bytes(b"first caption\nsecond caption")
    assert precomp.count_lines(path) == 2
    assert list(precomp.iter_captions(path)) == ["first caption", "second caption"]


def test_real_f30k_test_file_lacks_final_newline(shared_scan: Path):
    path = shared_scan / "f30k_precomp" / "test_caps.txt"
    assert not path.read_bytes().endswith(b"\n")
    assert precomp.count_lines(path) == 5000
    assert sum(1 for _ in precomp.iter_captions(path)) == 5000


@pytest.mark.parametrize("content, line, what", [
    (b"ok\n\nok\n", 2, "empty"),
    (b"ok\nok\n \t \n", 3, "empty"),
    (b"ok\nok\n\n", 3, "empty"),
    (b"ok\ncaf\xe9 latte\n", 2, "not UTF-8"),
])
def test_bad_caption_lines_name_file_and_line(tmp_path: Path, content: bytes, line: int, what: str):
    path = tmp_path / "train_caps.txt"
    path.write_bytes(content)
    one_line_error(path, f"line {line} .*{what}|line {line} is {what}", lambda: list(precomp.iter_captions(path)))


def test_lines_keep_everything_but_the_newline(tmp_path: Path):
    path = tmp_path / "dev_caps.txt"
    path.write_bytes("  A caf\u00e9 \u2019s sign \n".encode("utf-8"))
    assert list(precomp.iter_captions(path)) == ["  A caf\u00e9 \u2019s sign "]


def test_byte_order_mark_does_not_change_the_first_caption(tmp_path: Path):
    plain, marked = tmp_path / "plain_caps.txt", tmp_path / "bom_caps.txt"
    plain.write_bytes(b"Dogs run .\ncats sit .\n")
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    captions = list(precomp.iter_captions(marked))
    assert captions == list(precomp.iter_captions(plain))
    assert tokenize(captions[0])[0] == "dogs"
