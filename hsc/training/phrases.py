"""Phrase-level matching loss (SSAMT's multi-grained supervision), for every model family.

Each phrase of a batch caption (an entity or a triple, :mod:`hsc.data.phrases`) is scored
against the caption's image as a short caption ``<start> phrase <end>``, through the
model's own ``encode_captions`` and ``similarity``, beside one phrase swapped from it: an
entity with another entity's noun or attributes, a triple reversed or with another triple's
relation or another entity as its object, all taken from the batch's other captions. The
loss is the hinge ``[margin - s(image, phrase) + s(image, swapped)]_+`` summed over the
phrases (one drawn per caption and step), times ``train.phrase_loss``, added to the family's own objective.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from hsc.data.batches import PairBatch, collate_captions
from hsc.data.phrase_units import membership, whole_phrase_units
from hsc.data.store import SplitReader
from hsc.data.vocab import END_ID, START_ID
from hsc.errors import HscError
from hsc.training.distributed import LOCAL, Gather

Phrase = tuple[tuple[int, ...], ...]  # an entity (mods, noun) or a triple (subject, relation, object), as id tuples


class PhraseBank:
    """Every caption's entities and triples as word ids, from a split prepared with ``prepare.phrases``."""

    def __init__(self, reader: SplitReader) -> None:
        if reader.phrases is None:
            raise HscError(f"{reader.path}: has no phrase spans, which train.phrase_loss needs; "
                           f"set prepare.phrases: true in params.yaml and re-run `hsc prepare`")
        self.entities: list[list[Phrase]] = [[] for _ in range(reader.n_captions)]
        self.triples: list[list[Phrase]] = [[] for _ in range(reader.n_captions)]
        for j, start, stop in reader.phrases.entities.tolist():
            ids = tuple(reader.caption(j)[start:stop].tolist())
            self.entities[j].append((ids[:-1], ids[-1:]))  # attributes, noun (the chunk's last word)
        for j, *spans in reader.phrases.triples.tolist():
            ids = reader.caption(j)
            self.triples[j].append(tuple(tuple(ids[a:b].tolist()) for a, b in zip(spans[0::2], spans[1::2])))

    def pairs(self, caption_ids: list[int]) -> tuple[list[int], list[list[int]], list[list[int]]]:
        """(batch row, phrase ids, swapped phrase ids) of one random phrase per batch caption (when it has a swap).

        Swaps are drawn with torch's global generator, which the trainer seeds per epoch.
        """
        entities = [e for j in caption_ids for e in self.entities[j]]
        triples = [t for j in caption_ids for t in self.triples[j]]
        rows, positives, negatives = [], [], []
        for row, j in enumerate(caption_ids):
            own = self.entities[j] + self.triples[j]
            if own:  # one phrase per caption bounds the cost: 2B phrases scored against B images
                phrase = own[_pick(len(own))]
                swaps = _entity_swaps(phrase, entities) if len(phrase) == 2 else _triple_swaps(phrase, triples, entities)
                flat = _flat(phrase)
                swaps = [swap for swap in swaps if _flat(swap) != flat]
                if swaps:
                    rows.append(row)
                    positives.append([START_ID, *flat, END_ID])
                    negatives.append([START_ID, *_flat(swaps[_pick(len(swaps))]), END_ID])
        return rows, positives, negatives


def _flat(phrase: Phrase) -> list[int]:
    return [token for part in phrase for token in part]


def _pick(n: int) -> int:
    return int(torch.randint(n, (1,)))


def _entity_swaps(entity: Phrase, entities: list[Phrase]) -> list[Phrase]:
    """Another entity's noun with these attributes, and its attributes with this noun."""
    other = entities[_pick(len(entities))]
    return [(entity[0], other[1]), (other[0], entity[1])]


def _triple_swaps(triple: Phrase, triples: list[Phrase], entities: list[Phrase]) -> list[Phrase]:
    """The triple reversed, with another triple's relation, and with another entity as its object."""
    subject, relation, obj = triple
    return [(obj, relation, subject), (subject, triples[_pick(len(triples))][1], obj),
            (subject, relation, tuple(_flat(entities[_pick(len(entities))])))]


class PhraseObjective:
    """A family's objective plus ``weight`` x the phrase hinge loss of the batch's captions."""

    def __init__(self, objective: Callable[..., torch.Tensor], bank: PhraseBank, weight: float, margin: float) -> None:
        self.objective = objective
        self.bank = bank
        self.weight = weight
        self.margin = margin

    def __call__(self, model: Any, batch: PairBatch, gather: Gather = LOCAL) -> torch.Tensor:
        """The global batch's loss: each rank scores its own share's phrases, and the sums are gathered."""
        loss = self.objective(model, batch, gather)
        rows, positives, negatives = self.bank.pairs(batch.caption_ids.tolist())
        phrase_loss = batch.images.new_zeros(1)
        if rows:
            n = len(rows)
            tokens, lengths = collate_captions([torch.tensor(ids) for ids in positives + negatives])
            device = batch.images.device
            # every image x every phrase, as the batch is scored (a family may normalise over the batch's images)
            # a phrase scored as a caption is one parsed unit: all its words (read by ssamt's phrase attention)
            phrases = membership(whole_phrase_units(lengths.tolist()), lengths, tokens.size(1)).to(device)
            scores = model.similarity(model.encode_images(batch.images),
                                      model.encode_captions(tokens.to(device), lengths.to(device), phrases),
                                      lengths.to(device))
            mine = scores.float()[torch.tensor(rows, device=device)]
            index = torch.arange(n, device=device)
            phrase_loss = (self.margin - mine[index, index] + mine[index, index + n]).clamp(min=0).sum().reshape(1)
        return loss + self.weight * gather(phrase_loss).sum()


def phrase_objective(objective: Callable[..., torch.Tensor], reader: SplitReader, weight: float,
                     margin: float) -> Callable[..., torch.Tensor]:
    """``objective`` with the phrase loss added when ``weight`` > 0 (``train.phrase_loss``), else unchanged."""
    return PhraseObjective(objective, PhraseBank(reader), weight, margin) if weight > 0 else objective
