"""SSAMT's phrase attention: the parsed spans reach it at training and scoring time, and its mask is theirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsc.data.batches import PairDataset, collate_pairs
from hsc.data.phrase_units import CaptionUnits, membership, split_units
from hsc.data.phrases import PhraseSpans
from hsc.data.store import SplitReader
from hsc.errors import HscError
from hsc.evaluation.scoring import encode_split
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc.models.ssamt import phrase_attention_mask

TINY = {"embed_size": 16, "text": {"word_dim": 8}}


def tiny_ssamt(shape: DataShape = DataShape(img_dim=12, regions=5, vocab_size=30)):
    torch.manual_seed(0)
    return build_model(ModelSpec.resolve("ssamt", shape, TINY)).eval()


def test_the_attention_mask_is_exactly_the_parsed_phrases() -> None:
    # caption 0: <start> a small dog on a red car <end>: entity "small dog" (2:4), entity "red car" (6:8),
    # triple (small dog, on, red car) with the determiner at 5 in no phrase; caption 1 has no phrase
    units = [[((2, 4),), ((6, 8),), ((2, 4), (4, 5), (6, 8))], []]
    lengths = torch.tensor([9, 4])
    allowed = phrase_attention_mask(membership(units, lengths, 9))
    in_triple = {2, 3, 4, 6, 7}
    for i in range(9):
        for j in range(9):
            assert bool(allowed[0, i, j]) == (i == j or (i in in_triple and j in in_triple)), (i, j)
    assert torch.equal(allowed[1], torch.eye(9, dtype=torch.bool))


def test_spans_past_a_caption_are_rejected() -> None:
    with pytest.raises(HscError, match="phrase span 3:6 lies outside its 5 tokens"):
        membership([[((3, 6),)]], torch.tensor([5]), 7)
    spans = PhraseSpans(np.array([[0, 1, 3], [1, 2, 9]]), np.zeros((0, 7), dtype=np.int64))
    with pytest.raises(HscError, match="split.h5: caption 1: phrase span 2:9"):
        CaptionUnits(spans, np.array([6, 8]), "split.h5")


@torch.no_grad()
def test_changing_the_spans_changes_the_scores() -> None:
    model = tiny_ssamt()
    feats = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(1))
    tokens = torch.tensor([[1, 5, 6, 7, 8, 9, 2]])
    lengths = torch.tensor([7])
    img = model.encode_images(feats)
    score = lambda units: model.similarity(img, model.encode_captions(tokens, lengths, membership(units, lengths, 7)), lengths)  # noqa: E731
    entity_first, entity_last = score([[((1, 3),)]]), score([[((4, 6),)]])
    assert not torch.allclose(entity_first, entity_last)
    assert torch.equal(entity_first, score([[((1, 3),)]]))


def test_a_splits_spans_reach_training_batches_and_scoring(tiny_prepared_phrases: Path) -> None:
    reader = SplitReader(tiny_prepared_phrases / "test.h5")
    units = split_units(reader)
    assert sum(len(units[j]) for j in range(reader.n_captions)) == len(reader.phrases.entities) + len(reader.phrases.triples)
    batch = collate_pairs([PairDataset(reader)[j] for j in (0, 3, 4)])
    assert torch.equal(batch.phrases, membership([units[j] for j in (0, 3, 4)], batch.lengths, batch.tokens.size(1)))

    model = tiny_ssamt(DataShape(reader.feat_dim, reader.regions, reader.vocab_size))
    parsed = encode_split(model, reader, batch_size=8, device="cpu").captions
    entities, triples = reader.phrases.entities, reader.phrases.triples
    reader.phrases = PhraseSpans(entities[entities[:, 0] != 0], triples[triples[:, 0] != 0])  # caption 0 unparsed
    changed = encode_split(model, reader, batch_size=8, device="cpu").captions
    assert not torch.allclose(parsed[0], changed[0])
    assert torch.equal(parsed[1:], changed[1:])


def test_heads_must_divide_the_cross_attention_width() -> None:
    with pytest.raises(HscError, match="'model.ssamt.heads': 3 does not divide ssamt.attn_dim 64"):
        ModelSpec.resolve("ssamt", DataShape(12, 5, 30), {"embed_size": 48, "ssamt": {"heads": 3}})
