"""Tokeniser and vocabulary: SCAN's ids, its JSON format, and the released vocabularies."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hsc.data.precomp import iter_captions
from hsc.data.tokenizer import ABBREVIATIONS, tokenize, tokenize_all, tokenizer_name
from hsc.data.vocab import END_ID, SPECIALS, START_ID, UNK_ID, Vocabulary
from hsc.errors import HscError
from factories import released_vocab


def test_tokenize_lower_cases_and_splits_punctuation():
    assert tokenize("A Man's DOG, running.") == ["a", "man", "'s", "dog", ",", "running", "."]
    assert "nltk" in tokenizer_name()


def test_a_sentence_end_inside_a_caption_splits_as_word_tokenize_does():
    """word_tokenize splits sentences with Punkt first: ``runs.`` inside ends a sentence."""
    assert tokenize("A dog runs. It jumps .") == ["a", "dog", "runs", ".", "it", "jumps", "."]
    # Abbreviations, initials and ellipses end no sentence.
    assert tokenize("Mrs. Smith on St. Patrick's day in the U.S. with J. Doe ... ok") == [
        "mrs.", "smith", "on", "st.", "patrick", "'s", "day", "in", "the", "u.s.", "with", "j.", "doe", "...", "ok"]
    # The prepared data names the tokenizer, so data tokenised before the sentence split is redone.
    assert "punkt" in tokenizer_name()


# Inner tokens ending in "." that Punkt keeps whole besides ABBREVIATIONS: initials, an ellipsis,
# and one followed by a closing quote (Punkt then sees no next word).
KEPT_WHOLE = {"n.", "e.", "...", "p.i.n.k."}


def test_real_captions_with_a_sentence_end_inside(shared_scan: Path):
    """Every real caption with a token ending in "." followed by more words (per the word
    tokenizer alone) tokenises as ``word`` ``.`` there, unless Punkt keeps the token whole."""
    from nltk.tokenize import NLTKWordTokenizer

    words_only, split, kept = NLTKWordTokenizer(), 0, 0
    for path in sorted(shared_scan.glob("*/*_caps.txt")):
        # Only a caption with a period before a space can hold such a token: tokenise just those.
        for caption in (c for c in iter_captions(path) if re.search(r"\.\S*\s", c.strip())):
            before = words_only.tokenize(caption.lower())
            inner = [w for k, w in enumerate(before) if len(w) > 1 and w.endswith(".")
                     and any(x[0].isalnum() for x in before[k + 1:])]
            tokens = tokenize(caption)
            for word in inner:
                if word[:-1] in ABBREVIATIONS or word in KEPT_WHOLE:
                    assert word in tokens, (path, caption)
                    kept += 1
                else:
                    at = tokens.index(word[:-1])
                    assert word not in tokens and tokens[at + 1] == ".", (path, caption)
                    split += 1
    assert (split, kept) == (10, 15)


def test_token_table_keeps_captions_and_counts():
    captions = ["a dog runs .", "A DOG", "..."]
    table = tokenize_all(iter(captions))
    assert table.n_captions == 3
    assert [table.caption(j) for j in range(3)] == [tokenize(c) for c in captions]
    assert table.counts() == Counter(token for c in captions for token in tokenize(c))


def test_built_vocabulary_orders_by_count_then_alphabet():
    vocab = Vocabulary.from_counts({"b": 5, "a": 5, "c": 7, "rare": 3, "<unk>": 9}, min_count=4)
    assert [vocab.word_of(i) for i in range(len(vocab))] == [*SPECIALS, "c", "a", "b"]


def test_encode_adds_start_end_and_unknown():
    vocab = Vocabulary.from_counts({"dog": 4, "a": 4}, min_count=4)
    assert vocab.encode(["a", "cat"]) == [START_ID, vocab.id_of("a"), UNK_ID, END_ID]


def test_encode_table_matches_encode_per_caption():
    vocab = Vocabulary.from_counts({"a": 9, "dog": 5, "runs": 4}, min_count=4)
    table = tokenize_all(["a dog runs", "a cat", "...", "dog"])
    encoded = vocab.encode_table(table)
    for j in range(table.n_captions):
        assert encoded.tokens[encoded.offsets[j]:encoded.offsets[j + 1]].tolist() == vocab.encode(table.caption(j))
    assert (encoded.n_words, encoded.n_unknown) == (7, 2)  # "cat" and "..." are unknown
    head = encoded.head(2)
    assert (head.n_captions, head.n_words, head.n_unknown) == (2, 5, 1)


def test_save_load_round_trips_ids_and_hash(tmp_path: Path):
    vocab = Vocabulary.from_counts({"zebra": 8, "a": 6, "dog": 6}, min_count=1)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert [loaded.word_of(i) for i in range(len(loaded))] == [vocab.word_of(i) for i in range(len(vocab))]
    assert loaded.sha256 == vocab.sha256
    assert Vocabulary.from_counts({"zebra": 8, "a": 6, "dog": 7}, min_count=1).sha256 != vocab.sha256


@pytest.mark.parametrize("name, size", [("f30k_precomp", 8481), ("coco_precomp", 11353)])
def test_released_vocabulary_keeps_its_ids(shared_scan: Path, tmp_path: Path, name: str, size: int):
    path = shared_scan / "vocab" / f"{name}_vocab.json"
    vocab = Vocabulary.load(path)
    assert len(vocab) == size
    word2idx = json.loads(path.read_text(encoding="utf-8"))["word2idx"]
    assert all(vocab.id_of(word) == idx for word, idx in word2idx.items())
    vocab.save(tmp_path / "copy.json")
    copy = Vocabulary.load(tmp_path / "copy.json")
    assert copy.sha256 == vocab.sha256
    assert json.loads((tmp_path / "copy.json").read_text(encoding="utf-8"))["word2idx"] == word2idx


def test_f30k_test_captions_are_almost_all_known(shared_scan: Path):
    vocab = Vocabulary.load(shared_scan / "vocab" / "f30k_precomp_vocab.json")
    encoded = vocab.encode_table(tokenize_all(iter_captions(shared_scan / "f30k_precomp" / "test_caps.txt")))
    print(f"F30K test: {100 * encoded.unknown_rate:.2f}% of {encoded.n_words} tokens unknown")
    assert encoded.n_captions == 5000
    assert encoded.unknown_rate <= 0.01


def _drop(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


GOOD = released_vocab([*SPECIALS, "dog", "cat"])
BAD_VOCABS = {
    "missing word2idx": (_drop(GOOD, "word2idx"), "word2idx"),
    "missing idx2word": (_drop(GOOD, "idx2word"), "idx2word"),
    "missing idx": (_drop(GOOD, "idx"), "idx"),
    "idx wrong": ({**GOOD, "idx": 7}, "idx"),
    "id gap": ({**GOOD, "idx2word": {**_drop(GOOD["idx2word"], "5"), "6": "cat"}}, "idx2word"),
    "maps disagree": ({**GOOD, "word2idx": {**GOOD["word2idx"], "cat": 4, "dog": 5}}, "word2idx"),
    "extra word": ({**GOOD, "word2idx": {**GOOD["word2idx"], "cow": 6}}, "word2idx"),
    "no specials": (released_vocab(["dog", "<pad>", "<start>", "<end>", "<unk>"]), "idx2word"),
    "not an object": ([1, 2], "word2idx"),
}


@pytest.mark.parametrize("case", sorted(BAD_VOCABS))
def test_bad_vocabulary_json_names_file_and_key(tmp_path: Path, case: str):
    data, key = BAD_VOCABS[case]
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(HscError, match=key) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unreadable_vocabulary_files(tmp_path: Path):
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(HscError, match="broken.json: not a valid JSON"):
        Vocabulary.load(tmp_path / "broken.json")
    with pytest.raises(HscError, match="absent.json: no such vocabulary file"):
        Vocabulary.load(tmp_path / "absent.json")


def test_token_ids_are_int32_arrays():
    table = tokenize_all([])
    assert table.type_ids.dtype == np.int32 and table.offsets.tolist() == [0]
