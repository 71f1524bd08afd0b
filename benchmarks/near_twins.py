"""Near-twin recall of a trained checkpoint on the synthetic test split.

Method: rebuild the synthetic test split's twin pairs from params.yaml's ``synthetic`` section
(the generator is deterministic: the same params give the same data), score the prepared test
split with the checkpoint (exact scoring, every pair), and report, for the captions of every
twin pair, how often the caption's own image outscores its near-twin
(:func:`hsc.evaluation.twins.twin_recall`), per kind of difference (attribute, relation).
A bag-of-words ridge regression scores about 83% on attribute twins and 51% on relation
twins (docs/synthetic.md: the twin wins 17% and 49% of the time).

Run: ``python benchmarks/near_twins.py --checkpoint data/checkpoints/best.pt
[--data data/prepared/synthetic] [--params params.yaml]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hsc.checkpoint import load_model
from hsc.data.store import SplitReader
from hsc.data.synthetic import build_dataset
from hsc.evaluation.scoring import evaluate_split
from hsc.evaluation.twins import twin_recall
from hsc_app.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("data/checkpoints/best.pt"))
    parser.add_argument("--data", type=Path, default=Path("data/prepared/synthetic"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    params = load_params(args.params)
    test = build_dataset(params.synthetic)[1]["test"]
    reader = SplitReader(args.data / "test.h5")
    model, _ = load_model(args.checkpoint)
    ev = params.evaluate
    sims, metrics = evaluate_split(model, reader, device="cpu", batch_size=ev.encode_batch,
                                   img_block=ev.img_block, cap_block=ev.cap_block)
    kinds = [edit.kind if edit is not None else None for edit in test.edits]
    recall = twin_recall(sims, np.asarray(reader.caption_image), test.twin_of, kinds)
    print(f"{args.checkpoint}: test rsum {metrics['rsum']:.1f}; near-twin recall "
          + ", ".join(f"{kind} {value:.1f}%" for kind, value in recall.items()))


if __name__ == "__main__":
    main()
