"""DVC stage `evaluate`: score the test split(s) once and report every protocol of the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def evaluate(
    params: Path = typer.Option(Path("params.yaml"), help="Params file (section evaluate)."),
    checkpoint: list[Path] = typer.Option(..., help="hsc checkpoint; give several to ensemble them (mean of scores)."),
    data: Path = typer.Option(..., help="Prepared directory from `hsc prepare` (test.h5, COCO also testall.h5)."),
    out: Path = typer.Option(Path("metrics/eval.json"), help="Metrics JSON: {protocol: {i2t_r1: ..., rsum: ...}}."),
    plots: Path = typer.Option(Path("metrics/recall"), help="Directory of recall-curve TSVs, one per protocol."),
    sims_dir: Optional[Path] = typer.Option(None, help="Where --save-sims writes (default data/sims/<dataset>)."),
    save_sims: Optional[bool] = typer.Option(None, "--save-sims/--no-save-sims",
                                             help="Save <split>_sims.npy and <split>_ranks.npz "
                                                  "(default: evaluate.save_sims)."),
) -> None:
    """Encode and score each needed split once, then compute the dataset's protocols from it.

    With evaluate.rerank_k > 0, each query's top rerank_k candidates by pooled vectors are
    re-ranked by the head and nothing else is scored (hsc/evaluation/rerank.py); --save-sims
    then saves nothing, as only exact scoring gives a full score matrix.

    Flickr30K: f30k_1k on test. COCO: coco_5k on testall and coco_1k as the mean of its 5
    folds (coco_1k on test when testall is absent). Synthetic: synthetic_full and, when the
    image count divides by 5, synthetic_5fold.
    """
    from hsc.data.store import SplitReader
    from hsc.devices import EVALUATE_MEMORY_ADVICE, out_of_memory_advice, resolve_device
    from hsc.evaluation.ensemble import ensemble_scores
    from hsc.evaluation.protocols import protocols_for, run_protocols, scored_image_rows, splits_to_score
    from hsc.evaluation.rerank import evaluate_two_stage
    from hsc.evaluation.report import print_table, save_split_scores, write_eval_json, write_recall_tsvs
    from hsc.params import load_params

    settings = load_params(params).evaluate
    test = SplitReader(data / "test.h5")
    dataset = str(test.attrs["dataset"])
    readers = {split: test if split == "test" else SplitReader(data / f"{split}.h5")
               for split in splits_to_score(dataset, data)}
    split_images = {split: len(scored_image_rows(r.n_images, r.caption_image, str(r.path))) for split, r in readers.items()}
    protocols = protocols_for(dataset, split_images)

    device = resolve_device(settings.device, "evaluate.device")
    with out_of_memory_advice(EVALUATE_MEMORY_ADVICE):
        results = evaluate_two_stage(checkpoint, readers, protocols, settings, device) if settings.rerank_k else None
        sims_by_split = {}
        if results is None:  # every pair scored (rerank_k 0, or a pooled model, whose scores are exact)
            sims_by_split = ensemble_scores(checkpoint, readers, device=device, batch_size=settings.encode_batch,
                                            img_block=settings.img_block, cap_block=settings.cap_block)
            results = run_protocols(protocols, sims_by_split)
    write_eval_json(out, results)
    write_recall_tsvs(plots, results)
    if settings.save_sims if save_sims is None else save_sims:
        target = sims_dir or Path("data/sims") / dataset
        for split, sims in sims_by_split.items():
            save_split_scores(target, split, sims)
    print_table(results)


if __name__ == "__main__":
    from hsc.cli import run_app

    run_app(app)
