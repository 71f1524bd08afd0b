"""The synthetic world: which concepts exist, and how each looks as a region feature.

A world is drawn once from the seed and shared by all splits. Region features mimic
bottom-up-attention ones (non-negative after a ReLU) and come in three sorts:

- object regions: category + attribute + one of a few per-category views (parts, viewpoints);
- relation regions: relation + ``subject_map @ subject`` + ``object_map @ object``, with two
  different maps, so "dog on car" and "car on dog" look different;
- clutter regions: scenery prototypes no caption ever names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsc.data.config import SyntheticParams
from hsc.data.synthetic_lexicon import ATTRIBUTES, BACKGROUNDS, FILLER_WORDS, OBJECTS, RELATIONS, Concept, words_of
from hsc.data.synthetic_scenes import Scene

VIEWS_PER_OBJECT = 4
# Relative strengths of the parts of a region's signal (the category has strength 1).
ATTRIBUTE_WEIGHT = 0.8
VIEW_WEIGHT = 0.5
ROLE_WEIGHT = 0.8  # weight of subject_map @ subject and object_map @ object in a relation region


@dataclass(frozen=True)
class World:
    """The concepts drawn for one seed and their feature prototypes (rows of float64 arrays)."""

    objects: tuple[Concept, ...]
    attributes: tuple[Concept, ...]
    relations: tuple[Concept, ...]
    category_vectors: np.ndarray  # (n_objects, D)
    attribute_vectors: np.ndarray  # (n_attributes, D)
    view_vectors: np.ndarray  # (n_objects, VIEWS_PER_OBJECT, D)
    relation_vectors: np.ndarray  # (n_relations, D)
    background_vectors: np.ndarray  # (n_backgrounds, D)
    subject_map: np.ndarray  # (D, D)
    object_map: np.ndarray  # (D, D)

    def caption_words(self) -> frozenset[str]:
        """All tokens a caption of this world may use."""
        return words_of(self.objects) | words_of(self.attributes) | words_of(self.relations) | FILLER_WORDS

    def object_signal(self, category: int, attribute: int, view: int) -> np.ndarray:
        """The noise-free, pre-ReLU feature of one region of an object."""
        return (self.category_vectors[category] + ATTRIBUTE_WEIGHT * self.attribute_vectors[attribute]
                + VIEW_WEIGHT * self.view_vectors[category, view])

    def relation_signal(self, relation: int, subject_category: int, object_category: int) -> np.ndarray:
        """The noise-free, pre-ReLU feature of a relation region; swapping the roles changes it."""
        return (self.relation_vectors[relation]
                + ROLE_WEIGHT * (self.subject_map @ self.category_vectors[subject_category])
                + ROLE_WEIGHT * (self.object_map @ self.category_vectors[object_category]))


def sample_world(cfg: SyntheticParams, rng: np.random.Generator) -> World:
    """Draw the concept inventory and its prototypes; ``cfg`` has been checked against the lexicon."""
    dim = cfg.feat_dim

    def pick(pool: tuple[Concept, ...], count: int) -> tuple[Concept, ...]:
        return tuple(pool[i] for i in np.sort(rng.choice(len(pool), size=count, replace=False)))

    objects = pick(OBJECTS, cfg.n_objects)
    attributes = pick(ATTRIBUTES, cfg.n_attributes)
    relations = pick(RELATIONS, cfg.n_relations)
    # Scaled by 1/sqrt(D) so that a map keeps a prototype's per-dimension spread near 1.
    subject_map, object_map = rng.standard_normal((2, dim, dim)) / np.sqrt(dim)
    return World(
        objects=objects,
        attributes=attributes,
        relations=relations,
        category_vectors=rng.standard_normal((len(objects), dim)),
        attribute_vectors=rng.standard_normal((len(attributes), dim)),
        view_vectors=rng.standard_normal((len(objects), VIEWS_PER_OBJECT, dim)),
        relation_vectors=rng.standard_normal((len(relations), dim)),
        background_vectors=rng.standard_normal((len(BACKGROUNDS), dim)),
        subject_map=subject_map,
        object_map=object_map,
    )


def render_regions(world: World, scene: Scene, cfg: SyntheticParams, rng: np.random.Generator) -> np.ndarray:
    """The (regions, feat_dim) float32 features of one image of ``scene``, in shuffled order."""
    signals = [
        world.object_signal(obj.category, obj.attribute, int(rng.integers(VIEWS_PER_OBJECT)))
        for obj in scene.objects
        for _ in range(cfg.regions_per_object)
    ]
    signals += [
        world.relation_signal(rel.relation, scene.objects[rel.subject].category, scene.objects[rel.object].category)
        for rel in scene.relations
    ]
    clutter = rng.integers(len(world.background_vectors), size=cfg.regions - len(signals))
    signals += list(world.background_vectors[clutter])
    regions = np.stack(signals) + cfg.noise * rng.standard_normal((cfg.regions, cfg.feat_dim))
    return np.maximum(regions[rng.permutation(cfg.regions)], 0.0).astype(np.float32)
