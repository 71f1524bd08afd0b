"""A caption's parsed phrases as units of its tokens, and the (B, P, L) membership tensor a model reads.

A **unit** is one parsed phrase as the token segments it covers: an entity is one segment
``(start, stop)``; a triple is three (subject, relation, object), which need not touch (the
determiners between them belong to no phrase). Positions count in the stored caption
(``<start>`` is 0), as :mod:`hsc.data.phrases` stores them. The membership tensor marks, for
each caption of a batch and each of its units, the tokens the unit covers; a caption pads
with empty units to the batch's most units. Models whose attention reads phrase structure
(``RetrievalModel.reads_phrases``) take it in ``encode_captions``; the others ignore it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from hsc.data.phrases import PhraseSpans
from hsc.errors import HscError

Unit = tuple[tuple[int, int], ...]  # the (start, stop) token segments of one phrase


class CaptionUnits:
    """Every caption's units (entities, then triples) from a split's stored spans, checked against the captions."""

    def __init__(self, spans: PhraseSpans, lengths: np.ndarray, source: str) -> None:
        self.units: list[list[Unit]] = [[] for _ in range(len(lengths))]
        for j, start, stop in spans.entities.tolist():
            self._add(j, ((start, stop),), lengths, source)
        for j, *bounds in spans.triples.tolist():
            self._add(j, tuple(zip(bounds[0::2], bounds[1::2])), lengths, source)

    def _add(self, caption: int, unit: Unit, lengths: np.ndarray, source: str) -> None:
        if not 0 <= caption < len(lengths):
            raise HscError(f"{source}: a phrase span names caption {caption}, outside 0..{len(lengths) - 1}; "
                           "re-run `hsc prepare`")
        check_unit(unit, int(lengths[caption]), f"{source}: caption {caption}")
        self.units[caption].append(unit)

    def __getitem__(self, caption: int) -> list[Unit]:
        return self.units[caption]


def split_units(reader: Any) -> CaptionUnits | None:
    """The units of a split's captions, or None when it was prepared without ``prepare.phrases``."""
    if reader.phrases is None:
        return None
    return CaptionUnits(reader.phrases, reader.caption_lengths, str(reader.path))


def check_unit(unit: Unit, length: int, where: str) -> None:
    """One HscError when a segment is empty or reaches past the caption's ``length`` tokens."""
    for start, stop in unit:
        if not 0 <= start < stop <= length:
            raise HscError(f"{where}: phrase span {start}:{stop} lies outside its {length} tokens; "
                           "re-run `hsc prepare` (spans and captions disagree)")


def whole_phrase_units(lengths: Sequence[int]) -> list[list[Unit]]:
    """A phrase scored as a caption (``<start> phrase <end>``) is one unit: all its words."""
    return [[((1, length - 1),)] if length > 2 else [] for length in lengths]


def membership(units: Sequence[Sequence[Unit]], lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, P, width) bool: ``[b, p, t]`` is True when caption b's unit p covers token t.

    P is the batch's most units per caption (captions with fewer pad with empty units); every
    segment is checked against its caption's length, so a span past the caption is an error.
    """
    most = max((len(own) for own in units), default=0)
    members = torch.zeros(len(units), most, width, dtype=torch.bool)
    for b, own in enumerate(units):
        for p, unit in enumerate(own):
            check_unit(unit, int(lengths[b]), f"caption {b} of the batch")
            for start, stop in unit:
                members[b, p, start:stop] = True
    return members
