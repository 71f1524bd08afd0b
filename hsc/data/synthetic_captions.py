"""Captions: five paraphrases per scene, each naming a part of it in its own words.

A caption picks a plan (one object, two objects, one relation, or a relation plus another
object), a frame with filler words for it, and a random synonym for every concept, so
the same scene reads as "a red car under ..." in one caption and "there is a crimson
automobile" in the next.
"""

from __future__ import annotations

import numpy as np

from hsc.data.synthetic_lexicon import (
    EXTENDED_FRAMES,
    OBJECT_FRAMES,
    PAIR_FRAMES,
    PREPOSITION_FRAMES,
    RELATION_FRAMES,
    Concept,
)
from hsc.data.precomp import CAPTIONS_PER_IMAGE
from hsc.data.synthetic_scenes import Scene, TwinEdit
from hsc.data.synthetic_world import World

# Of the five captions of either image of a near-twin pair, how many name what tells the
# two apart; the others may describe parts the twins share, as real captions do.
DISTINGUISHING_CAPTIONS = 3
ATTRIBUTE_RATE = 0.7  # chance that a noun phrase carries its object's attribute
DEFINITE_RATE = 0.25  # chance of "the" rather than "a"/"an"
PLAN_WEIGHTS = {"object": 0.3, "pair": 0.15, "relation": 0.4, "extended": 0.15}


def write_captions(world: World, scene: Scene, rng: np.random.Generator,
                   distinguishing: TwinEdit | None) -> list[str]:
    """Five captions of ``scene``; with ``distinguishing``, some of them name the twins' difference."""
    focused = [i < DISTINGUISHING_CAPTIONS and distinguishing is not None for i in range(CAPTIONS_PER_IMAGE)]
    return [_caption(world, scene, rng, distinguishing if focus else None) for focus in rng.permutation(focused)]


def _caption(world: World, scene: Scene, rng: np.random.Generator, focus: TwinEdit | None) -> str:
    writer = _CaptionWriter(world, scene, rng)
    plans = _plans(scene, focus)
    kinds = sorted(plans)
    weights = np.array([PLAN_WEIGHTS[kind] for kind in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    options = plans[kind]
    return writer.write(kind, *options[int(rng.integers(len(options)))], focus=focus) + " ."


def _plans(scene: Scene, focus: TwinEdit | None) -> dict[str, list[tuple[int, ...]]]:
    """Feasible plans by kind, as argument tuples: object indices, or a relation index and objects."""
    n = len(scene.objects)
    others = {k: [i for i in range(n) if i not in (rel.subject, rel.object)] for k, rel in enumerate(scene.relations)}
    plans = {
        "object": [(i,) for i in range(n)],
        "pair": [(i, j) for i in range(n) for j in range(n) if i != j],
        "relation": [(k,) for k in range(len(scene.relations))],
        "extended": [(k, i) for k in others for i in others[k]],
    }
    if focus is not None and focus.kind == "relation":
        plans = {"relation": [(focus.index,)], "extended": [p for p in plans["extended"] if p[0] == focus.index]}
    elif focus is not None:
        involved = {k for k, rel in enumerate(scene.relations) if focus.index in (rel.subject, rel.object)}
        plans = {
            "object": [(focus.index,)],
            "pair": [p for p in plans["pair"] if p[0] == focus.index],
            "relation": [p for p in plans["relation"] if p[0] in involved],
        }
    return {kind: options for kind, options in plans.items() if options}


class _CaptionWriter:
    """Fills frames for one caption; ``focus`` forces the attribute of the object it names."""

    def __init__(self, world: World, scene: Scene, rng: np.random.Generator) -> None:
        self.world, self.scene, self.rng = world, scene, rng

    def write(self, kind: str, first: int, second: int | None = None, focus: TwinEdit | None = None) -> str:
        """A caption (without its final " .") for one of ``_plans``'s argument tuples of ``kind``."""
        attributed = focus.index if focus is not None and focus.kind == "attribute" else None
        if kind == "object":
            return self._frame(OBJECT_FRAMES).format(np=self._noun_phrase(first, attributed))
        if kind == "pair":
            return self._frame(PAIR_FRAMES).format(a=self._noun_phrase(first, attributed),
                                                   b=self._noun_phrase(second, attributed))
        clause = self._relation_clause(first, attributed)
        if kind == "relation":
            return clause
        return self._frame(EXTENDED_FRAMES).format(clause=clause, np=self._noun_phrase(second, attributed))

    def _relation_clause(self, index: int, attributed: int | None) -> str:
        rel = self.scene.relations[index]
        concept = self.world.relations[rel.relation]
        frames = RELATION_FRAMES + (PREPOSITION_FRAMES if concept.kind == "preposition" else ())
        return self._frame(frames).format(s=self._noun_phrase(rel.subject, attributed), rel=self._synonym(concept),
                                          o=self._noun_phrase(rel.object, attributed))

    def _noun_phrase(self, index: int, attributed: int | None) -> str:
        """"a red car", "the automobile", ...; always with the attribute when ``index == attributed``."""
        obj = self.scene.objects[index]
        words = [self._synonym(self.world.objects[obj.category])]
        if index == attributed or self.rng.random() < ATTRIBUTE_RATE:
            words.insert(0, self._synonym(self.world.attributes[obj.attribute]))
        if self.rng.random() < DEFINITE_RATE:
            article = "the"
        else:
            article = "an" if words[0][0] in "aeiou" else "a"
        return " ".join([article, *words])

    def _synonym(self, concept: Concept) -> str:
        return concept.synonyms[int(self.rng.integers(len(concept.synonyms)))]

    def _frame(self, frames: tuple[str, ...]) -> str:
        return frames[int(self.rng.integers(len(frames)))]
