"""Precision and recall of the phrase parser (hsc.data.phrases) against the synthetic generator's truth.

Method: build the default synthetic world and its test split in memory (params.yaml's
``synthetic`` section, or the defaults). Each caption's truth is what its image's scene holds
and the caption names: an object is named when one of its category's synonyms occurs as
whole words (with its attribute when one of the attribute's synonyms comes just before);
a relation when a synonym of it and both its objects are named. A parsed entity is right
when its words are exactly an object's noun (and attribute) of the scene; a parsed triple
when subject, relation and object are exactly a scene relation's, in its direction.

    .venv/bin/python benchmarks/bench_phrases.py [--split test]
"""

from __future__ import annotations

import argparse
import re
import time

from hsc.data.config import SyntheticParams
from hsc.data.phrases import load_parser, parse_captions, parser_name
from hsc.data.synthetic import build_dataset
from hsc.data.tokenizer import tokenize


def named(synonyms: tuple[str, ...], text: str) -> list[str]:
    return [s for s in synonyms if re.search(rf"(^| ){re.escape(s)}( |$)", text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    args = parser.parse_args()
    world, splits = build_dataset(SyntheticParams())
    data = splits[args.split]
    nlp = load_parser()
    start = time.perf_counter()
    spans = parse_captions(nlp, data.captions)
    seconds = time.perf_counter() - start
    counts = dict.fromkeys(("e_parsed", "e_right", "e_true", "e_found", "t_parsed", "t_right", "t_true", "t_found"), 0)
    by_caption: dict[int, tuple[list, list]] = {}
    for row in spans.entities.tolist():
        by_caption.setdefault(row[0], ([], []))[0].append(row[1:])
    for row in spans.triples.tolist():
        by_caption.setdefault(row[0], ([], []))[1].append(row[1:])
    for j, caption in enumerate(data.captions):
        words = ["<start>", *tokenize(caption), "<end>"]
        text = " ".join(words[1:-1])
        scene = data.scenes[j // 5]
        # every surface form of each scene object: "attribute noun" and the bare noun
        forms = []
        for obj in scene.objects:
            nouns = world.objects[obj.category].synonyms
            forms.append({f"{a} {n}" for a in world.attributes[obj.attribute].synonyms for n in nouns} | set(nouns))
        true_entities = {k for k, obj in enumerate(scene.objects) if named(world.objects[obj.category].synonyms, text)}
        entities, triples = by_caption.get(j, ([], []))
        parsed = [" ".join(words[a:b]) for a, b in entities]
        matched = {k for phrase in parsed for k, f in enumerate(forms) if phrase in f}
        counts["e_parsed"] += len(parsed)
        counts["e_right"] += sum(any(phrase in f for f in forms) for phrase in parsed)
        counts["e_true"] += len(true_entities)
        counts["e_found"] += len(true_entities & matched)
        true_triples = {(rel.subject, rel.relation, rel.object) for rel in scene.relations
                        if named(world.relations[rel.relation].synonyms, text) and {rel.subject, rel.object} <= true_entities}
        right = set()
        for a, b, c, d, e, f in triples:
            s, r, o = " ".join(words[a:b]), " ".join(words[c:d]), " ".join(words[e:f])
            hits = {(rel.subject, rel.relation, rel.object) for rel in scene.relations
                    if s in forms[rel.subject] and o in forms[rel.object] and r in world.relations[rel.relation].synonyms}
            counts["t_right"] += bool(hits)
            right |= hits
        counts["t_parsed"] += len(triples)
        counts["t_true"] += len(true_triples)
        counts["t_found"] += len(true_triples & right)
    print(f"parser: {parser_name(nlp)}; {len(data.captions)} {args.split} captions in {seconds:.1f} s "
          f"({len(data.captions) / seconds:.0f} captions/s)")
    for kind, name in (("e", "entities"), ("t", "triples")):
        print(f"{name}: precision {counts[f'{kind}_right'] / max(1, counts[f'{kind}_parsed']):.3f} "
              f"({counts[f'{kind}_right']}/{counts[f'{kind}_parsed']}), recall "
              f"{counts[f'{kind}_found'] / max(1, counts[f'{kind}_true']):.3f} "
              f"({counts[f'{kind}_found']}/{counts[f'{kind}_true']})")


if __name__ == "__main__":
    main()
