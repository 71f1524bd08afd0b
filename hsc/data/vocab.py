"""The word vocabulary, in SCAN's JSON format ``{word2idx, idx2word, idx}``.

Ids 0-3 are ``<pad> <start> <end> <unk>``. A built vocabulary orders the other words by
descending count, then alphabetically, so the same captions always give the same ids.
A loaded (released) vocabulary keeps its ids exactly: released checkpoints index their
embedding tables with them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from hsc.atomic import write_text
from hsc.errors import HscError

if TYPE_CHECKING:  # the tokenizer pulls in nltk, which train and evaluate never need
    from hsc.data.tokenizer import TokenTable

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)


class Vocabulary:
    """A bijection between words and ids 0..n-1 whose first four words are :data:`SPECIALS`."""

    def __init__(self, words: Sequence[str]) -> None:
        if tuple(words[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}, not {tuple(words[:4])}")
        self._words = list(words)
        self._ids = {word: i for i, word in enumerate(self._words)}
        if len(self._ids) != len(self._words):
            raise ValueError("a vocabulary's words must be distinct")

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_count: int) -> "Vocabulary":
        """Words seen at least ``min_count`` times, by descending count then alphabetically."""
        kept = [word for word, n in counts.items() if n >= min_count and word not in SPECIALS]
        kept.sort(key=lambda word: (-counts[word], word))
        return cls([*SPECIALS, *kept])

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read a SCAN-format vocabulary JSON, checking that its two maps agree."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HscError(f"{path}: no such vocabulary file; check prepare.vocab in params.yaml") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HscError(f"{path}: not a valid JSON vocabulary ({exc})") from None
        return cls(_words_from_json(data, path))

    def save(self, path: str | Path) -> None:
        """Write SCAN's format (atomically), maps in id order."""
        write_text(path, json.dumps({
            "word2idx": dict(self._ids),
            "idx2word": {str(i): word for i, word in enumerate(self._words)},
            "idx": len(self._words),
        }, indent=2) + "\n")

    def __len__(self) -> int:
        return len(self._words)

    def id_of(self, word: str) -> int:
        return self._ids.get(word, UNK_ID)

    def word_of(self, idx: int) -> str:
        return self._words[idx]

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """``<start> w1 ... wn <end>`` as ids; unknown words become ``<unk>``."""
        return [START_ID, *(self._ids.get(token, UNK_ID) for token in tokens), END_ID]

    def encode_table(self, table: TokenTable) -> "EncodedCaptions":
        """Encode every caption of a token table at once (vectorised)."""
        ids_of_types = np.fromiter((self.id_of(word) for word in table.types), dtype=np.int32,
                                   count=len(table.types))
        words = ids_of_types[table.type_ids]
        n_captions = table.n_captions
        offsets = table.offsets + 2 * np.arange(n_captions + 1, dtype=np.int64)
        tokens = np.empty(offsets[-1], dtype=np.int32)
        tokens[offsets[:-1]] = START_ID
        tokens[offsets[1:] - 1] = END_ID
        caption_of_word = np.repeat(np.arange(n_captions, dtype=np.int64), np.diff(table.offsets))
        # word k (global index) of caption j moves right by 2j + 1: j starts and ends before it, plus its own start
        tokens[np.arange(len(words), dtype=np.int64) + 2 * caption_of_word + 1] = words
        return EncodedCaptions(tokens=tokens, offsets=offsets,
                               n_words=len(words), n_unknown=int(np.count_nonzero(words == UNK_ID)))

    @property
    def sha256(self) -> str:
        """Hash of the word->id mapping; equal vocabularies hash equally whatever the JSON layout."""
        canonical = json.dumps(self._words, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EncodedCaptions:
    """Captions as concatenated ids (``<start> ... <end>``) with offsets, plus unknown-word counts."""

    tokens: np.ndarray  # int32 (T,)
    offsets: np.ndarray  # int64 (C + 1,)
    n_words: int  # words, not counting <start>/<end>
    n_unknown: int  # words that became <unk>

    @property
    def n_captions(self) -> int:
        return len(self.offsets) - 1

    @property
    def unknown_rate(self) -> float:
        """Share of words (not counting ``<start>``/``<end>``) that became ``<unk>``."""
        return self.n_unknown / self.n_words if self.n_words else 0.0

    def head(self, n_captions: int) -> "EncodedCaptions":
        """The first ``n_captions`` captions."""
        offsets = self.offsets[: n_captions + 1]
        tokens = self.tokens[: offsets[-1]]
        n_unknown = int(np.count_nonzero(tokens == UNK_ID))
        return EncodedCaptions(tokens, offsets, n_words=len(tokens) - 2 * n_captions, n_unknown=n_unknown)


def _words_from_json(data: object, path: Path) -> list[str]:
    """The words in id order, or an :class:`HscError` naming the key that is wrong."""
    if not isinstance(data, dict):
        raise HscError(f"{path}: expected a JSON object with keys word2idx, idx2word, idx")
    for key, kind in (("word2idx", dict), ("idx2word", dict), ("idx", int)):
        if key not in data:
            raise HscError(f"{path}: key '{key}' is missing; a SCAN vocabulary has word2idx, idx2word and idx")
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise HscError(f"{path}: key '{key}' should be a JSON {'object' if kind is dict else 'integer'}")
    idx2word, word2idx, size = data["idx2word"], data["word2idx"], data["idx"]
    expected_keys = {str(i) for i in range(len(idx2word))}
    if set(idx2word) != expected_keys:
        stray = sorted(set(idx2word) - expected_keys)[:3]
        raise HscError(f"{path}: key 'idx2word': ids must be 0..{len(idx2word) - 1} with no gaps (found {stray})")
    words = [idx2word[str(i)] for i in range(len(idx2word))]
    if size != len(words):
        raise HscError(f"{path}: key 'idx' is {size} but idx2word has {len(words)} ids")
    mismatch = next((w for i, w in enumerate(words) if word2idx.get(w) != i), None)
    if mismatch is None and len(word2idx) != len(words):
        known = set(words)
        mismatch = next(w for w in word2idx if w not in known)
    if mismatch is not None:
        raise HscError(f"{path}: key 'word2idx' disagrees with idx2word at word {mismatch!r}")
    if tuple(words[:4]) != SPECIALS:
        raise HscError(f"{path}: key 'idx2word': ids 0-3 must be {', '.join(SPECIALS)}")
    return words
