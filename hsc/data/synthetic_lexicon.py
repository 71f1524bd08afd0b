"""The words of the synthetic world: concepts with two or three synonyms each, plus fillers.

Every surface form is lower-case ASCII; a multi-word synonym is one phrase ("on top of").
No token of an object or attribute phrase belongs to a second object or attribute, so a
caption never names two concepts by accident. Relations are directed and the list holds no
inverse pairs ("on" but not "under"), so "A on B" has exactly one description.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Concept:
    """A nameable thing: ``synonyms[0]`` is its name; ``kind`` is its group or word class."""

    synonyms: tuple[str, ...]
    kind: str

    @property
    def name(self) -> str:
        return self.synonyms[0]


def _concepts(kind: str, *synonym_lists: str) -> tuple[Concept, ...]:
    """Concepts from comma-separated synonym lists, e.g. ``"man, guy, gentleman"``."""
    return tuple(Concept(tuple(word.strip() for word in line.split(",")), kind) for line in synonym_lists)


OBJECTS = _concepts(
    "object",
    "man, guy, gentleman", "woman, lady", "child, kid, youngster", "dog, puppy, hound",
    "cat, kitten, kitty", "horse, pony, stallion", "bird, songbird", "cow, calf, cattle",
    "sheep, lamb, ewe", "elephant, pachyderm", "car, automobile, sedan", "bicycle, bike, cycle",
    "motorcycle, motorbike, scooter", "truck, lorry, pickup", "bus, coach", "boat, ship, vessel",
    "train, locomotive", "airplane, plane, jet", "chair, stool", "table, desk",
    "bench, pew", "sofa, couch, settee", "bed, cot, mattress", "ball, football",
    "box, crate, carton", "bag, sack, backpack", "bottle, flask", "cup, mug",
    "bowl, basin", "plate, dish, platter", "book, novel, paperback", "phone, cellphone, smartphone",
    "laptop, computer", "television, tv, monitor", "umbrella, parasol", "hat, cap, beanie",
    "lamp, lantern", "clock, timepiece", "vase, urn, jar", "pizza, flatbread",
    "cake, pastry", "banana, plantain", "sandwich, hoagie", "skateboard, longboard",
    "surfboard, paddleboard", "teddy bear, stuffed animal, plush toy", "bucket, pail",
    "basket, hamper", "tent, canopy", "pillow, cushion", "blanket, quilt",
    "rock, boulder, stone", "robot, android", "ladder, stepladder", "suitcase, luggage, trolley",
    "shoe, sneaker, boot",
)

ATTRIBUTES = (
    _concepts(
        "colour",
        "red, crimson, scarlet", "blue, azure, navy", "green, emerald", "yellow, golden",
        "black, ebony", "white, snowy, ivory", "brown, tan", "pink, rosy",
        "orange, tangerine", "purple, violet", "grey, gray, silver",
    )
    + _concepts("size", "small, little, tiny", "large, big, huge", "tall, towering")
    + _concepts(
        "material", "wooden, timber", "metal, metallic, steel", "plastic, synthetic",
        "glass, glassy", "leather, suede",
    )
    + _concepts("pattern", "striped, stripy", "spotted, dotted", "checkered, plaid")
    + _concepts(
        "condition", "old, aged, worn", "new, shiny, brand new", "wet, damp, soaked",
        "dirty, muddy, grimy", "clean, spotless",
    )
)

RELATIONS = _concepts(
    "preposition",
    "on, on top of, sitting on", "to the left of, left of, on the left of",
    "behind, in back of, at the back of", "inside, within, inside of",
) + _concepts(
    "verb",
    "holding, gripping, clutching", "chasing, running after, pursuing",
    "riding, riding on, mounted on", "pulling, dragging, towing", "pushing, shoving",
    "carrying, hauling", "looking at, watching, staring at",
    "leaning on, leaning against, propped against", "covering, draped over",
    "biting, chewing on, nibbling",
)

# Scenery that clutters images but that no caption ever names (like SCAN's unmentioned regions).
BACKGROUNDS = _concepts(
    "background",
    "sky", "wall", "floor", "ground", "grass", "road", "ceiling", "fence", "window",
    "curtain", "tree", "building", "water", "sand", "snow", "cloud", "shadow", "pavement",
)

# Caption frames; "{...}" slots take noun phrases ({np}, {a}, {b}, {s}, {o}), a relation
# phrase ({rel}) or a whole relation clause ({clause}). Their other words are the fillers.
OBJECT_FRAMES = (
    "{np}", "there is {np}", "{np} in the picture", "a photo of {np}", "we can see {np}",
    "the image shows {np}",
)
PAIR_FRAMES = ("{a} and {b}", "{a} with {b}", "there is {a} and {b}", "a picture of {a} and {b}")
RELATION_FRAMES = (
    "{s} {rel} {o}", "{s} is {rel} {o}", "there is {s} {rel} {o}", "the picture shows {s} {rel} {o}",
    "{s} that is {rel} {o}",
)
# Only a place phrase can move to the front: "behind the red car there is a dog".
PREPOSITION_FRAMES = ("{rel} {o} there is {s}",)
EXTENDED_FRAMES = ("{clause} and {np}", "{clause} with {np} in the background", "{clause} and {np} nearby")
ARTICLES = ("a", "an", "the")

FRAMES = OBJECT_FRAMES + PAIR_FRAMES + RELATION_FRAMES + PREPOSITION_FRAMES + EXTENDED_FRAMES
FILLER_WORDS = frozenset(ARTICLES) | frozenset(
    word for frame in FRAMES for word in frame.split() if not word.startswith("{")
)


def words_of(concepts: tuple[Concept, ...]) -> frozenset[str]:
    """Every token of every synonym of ``concepts``."""
    return frozenset(word for concept in concepts for phrase in concept.synonyms for word in phrase.split())
