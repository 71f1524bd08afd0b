"""Scenes (what an image shows) and their near-twins (the hard negatives).

A scene is a few objects of distinct categories, each with one attribute, and one or two
directed relations between pairs of them. A near-twin copies a scene and changes exactly
one thing: one object's attribute, or the direction of one relation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from hsc.data.config import SyntheticParams

if TYPE_CHECKING:  # the world module imports this one at run time
    from hsc.data.synthetic_world import World

MAX_RELATIONS = 2


@dataclass(frozen=True)
class SceneObject:
    category: int  # index into World.objects
    attribute: int  # index into World.attributes


@dataclass(frozen=True)
class SceneRelation:
    subject: int  # index into Scene.objects
    relation: int  # index into World.relations
    object: int  # index into Scene.objects


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    relations: tuple[SceneRelation, ...]


@dataclass(frozen=True)
class TwinEdit:
    """What tells a near-twin pair apart: object ``index``'s attribute, or relation ``index``'s direction."""

    kind: Literal["attribute", "relation"]
    index: int


def max_relations(n_objects: int) -> int:
    """How many relations a scene of ``n_objects`` gets at most: fewer than its objects, and few."""
    return min(n_objects - 1, MAX_RELATIONS)


def sample_scene(world: World, cfg: SyntheticParams, rng: np.random.Generator) -> Scene:
    """A random scene: distinct categories, random attributes, random directed relations."""
    n_objects = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    categories = rng.choice(len(world.objects), size=n_objects, replace=False)
    attributes = rng.integers(len(world.attributes), size=n_objects)
    objects = tuple(SceneObject(int(c), int(a)) for c, a in zip(categories, attributes))
    n_relations = int(rng.integers(1, max_relations(n_objects) + 1)) if n_objects > 1 else 0
    # Distinct unordered pairs, so a relation flipped in a twin never duplicates another one.
    pairs = [(i, j) for i in range(n_objects) for j in range(i + 1, n_objects)]
    relations = []
    for pair_index in rng.choice(len(pairs), size=n_relations, replace=False):
        subject, obj = pairs[pair_index]
        if rng.random() < 0.5:
            subject, obj = obj, subject
        relations.append(SceneRelation(subject, int(rng.integers(len(world.relations))), obj))
    return Scene(objects, tuple(relations))


def make_twin(world: World, scene: Scene, rng: np.random.Generator) -> tuple[Scene, TwinEdit]:
    """A copy of ``scene`` with one attribute changed or one relation reversed, and what changed."""
    if scene.relations and rng.random() < 0.5:
        index = int(rng.integers(len(scene.relations)))
        old = scene.relations[index]
        relations = list(scene.relations)
        relations[index] = SceneRelation(old.object, old.relation, old.subject)
        return replace(scene, relations=tuple(relations)), TwinEdit("relation", index)
    index = int(rng.integers(len(scene.objects)))
    old = scene.objects[index]
    new_attribute = _other_attribute(world, old.attribute, rng)
    objects = list(scene.objects)
    objects[index] = SceneObject(old.category, new_attribute)
    return replace(scene, objects=tuple(objects)), TwinEdit("attribute", index)


def _other_attribute(world: World, attribute: int, rng: np.random.Generator) -> int:
    """Another attribute, of the same group (red -> blue) when the world has one."""
    kind = world.attributes[attribute].kind
    others = [i for i in range(len(world.attributes)) if i != attribute]
    same_kind = [i for i in others if world.attributes[i].kind == kind]
    return int(rng.choice(same_kind or others))
