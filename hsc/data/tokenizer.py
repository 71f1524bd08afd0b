"""Caption tokenisation as SCAN and LHSC did it: lower-case, then ``nltk.word_tokenize``.

``word_tokenize`` splits sentences with Punkt first, then tokenises each with NLTK's word
tokenizer, so a sentence end inside a caption ("... runs. it ...") gives ``runs`` ``.``. Punkt's
trained English model is a download; its rules need no data, only its parameters. On
lower-cased captions only its abbreviations matter (a listed abbreviation does not end a
sentence; single letters and ellipses never do here). The model itself cannot be read offline,
so the list is what it demonstrably holds: the words the released SCAN vocabularies, built by
``word_tokenize``, keep whole with their period inside captions (``st.``, ``u.s.``, ``j.p.``...).
Others it may hold (``jr``, ``d.c``...) end a sentence here.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import nltk
import numpy as np
from nltk.tokenize import NLTKWordTokenizer, PunktSentenceTokenizer
from nltk.tokenize.punkt import PunktParameters

# Every multi-letter word ending in "." in the released f30k and coco vocabularies.
ABBREVIATIONS = frozenset({"ave", "dr", "j.p", "mr", "mrs", "st", "u.s"})
TOKENIZER_VERSION = 2  # 2: Punkt sentence split before the word tokenizer


def _sentence_splitter() -> PunktSentenceTokenizer:
    params = PunktParameters()
    params.abbrev_types = set(ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


_SENTENCES = _sentence_splitter()
_TOKENIZER = NLTKWordTokenizer()


def tokenize(text: str) -> list[str]:
    """The tokens of one caption, lower-cased, as ``nltk.word_tokenize(text.lower())`` gives them."""
    return [token for sentence in _SENTENCES.tokenize(text.lower()) for token in _TOKENIZER.tokenize(sentence)]


def tokenizer_name() -> str:
    """Names the tokenizer and its version (stored with prepared data, as the tokens depend on it)."""
    return f"punkt+nltk.NLTKWordTokenizer+lower v{TOKENIZER_VERSION} (nltk {nltk.__version__})"


@dataclass(frozen=True)
class TokenTable:
    """The tokens of many captions, compactly: distinct words plus one int32 per token.

    Caption j is ``[types[t] for t in type_ids[offsets[j]:offsets[j + 1]]]``. Tokenising once
    into this form serves both vocabulary counting and encoding without keeping millions of
    Python strings alive.
    """

    types: tuple[str, ...]
    type_ids: np.ndarray  # int32 (T,)
    offsets: np.ndarray  # int64 (C + 1,)

    @property
    def n_captions(self) -> int:
        return len(self.offsets) - 1

    def caption(self, j: int) -> list[str]:
        return [self.types[t] for t in self.type_ids[self.offsets[j]:self.offsets[j + 1]]]

    def counts(self) -> Counter[str]:
        """How often each word occurs."""
        per_type = np.bincount(self.type_ids, minlength=len(self.types))
        return Counter({word: int(n) for word, n in zip(self.types, per_type) if n})


def tokenize_all(captions: Iterable[str]) -> TokenTable:
    """Tokenise every caption of an iterable (consumed once, so it may stream from a file)."""
    type_of: dict[str, int] = {}
    # array, not list: millions of ids as 4-byte ints rather than Python objects
    type_ids = array("i")
    offsets = array("q", [0])
    for text in captions:
        for token in tokenize(text):
            type_ids.append(type_of.setdefault(token, len(type_of)))
        offsets.append(len(type_ids))
    return TokenTable(
        types=tuple(type_of),
        type_ids=np.frombuffer(type_ids, dtype=np.int32).copy(),
        offsets=np.frombuffer(offsets, dtype=np.int64).copy(),
    )
