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
    headline: Optional[Path] = typer.Option(None, help="Headline JSON {test_rsum: {protocol: rsum}}, which "
                                                      "dvc exp show lists first (default: headline.json beside OUT)."),
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
    image count divides by 5, synthetic_5fold. Your own data (coco_format): coco_format_test
    and, for 5,000 test images, coco_format_1k (5 folds); a COCO 5K test split with COCO ids
    also gets eccv_caption and cxc (with the eccv extra installed). Under torchrun the ranks
    share the scoring and rank 0 writes the outputs.
    """
    import time

    from hsc.data.store import SplitReader
    from hsc.devices import EVALUATE_MEMORY_ADVICE, out_of_memory_advice
    from hsc.distributed import start, stop
    from hsc.evaluation.ensemble import ensemble_scores
    from hsc.evaluation.protocols import (protocols_for, run_protocols, scored_image_rows, scored_relevance,
                                          splits_to_score)
    from hsc.evaluation.rerank import evaluate_two_stage
    from hsc.evaluation.report import (print_table, save_split_scores, write_eval_json, write_headline_json,
                                      write_recall_tsvs)
    from hsc_app.params import load_stage_params

    settings = load_stage_params(params).evaluate
    world, device = start(settings.device, "evaluate.device")
    test = SplitReader(data / "test.h5")
    dataset = str(test.attrs["dataset"])
    readers = {split: test if split == "test" else SplitReader(data / f"{split}.h5")
               for split in splits_to_score(dataset, data)}
    rows = {split: scored_image_rows(r.n_images, r.caption_image, str(r.path)) for split, r in readers.items()}
    relevance = {split: scored_relevance(r.n_images, r.caption_image) for split, r in readers.items()}
    protocols = protocols_for(dataset, {split: len(r) for split, r in rows.items()})

    started = time.perf_counter()
    results, sims_by_split = None, {}
    try:
        with out_of_memory_advice(EVALUATE_MEMORY_ADVICE):
            if settings.rerank_k:
                _check_five_per_image(readers, relevance)
                results = evaluate_two_stage(checkpoint, readers, protocols, settings, device)
            if results is None:  # every pair scored (rerank_k 0, or a pooled model, whose scores are exact)
                sims_by_split = ensemble_scores(checkpoint, readers, device=device, batch_size=settings.encode_batch,
                                                img_block=settings.img_block, cap_block=settings.cap_block)
    finally:
        stop()  # every rank holds the gathered scores
    scoring_s = time.perf_counter() - started
    if not world.main:
        return
    if results is None:
        results = run_protocols(protocols, sims_by_split, relevance)
    extra = {}
    for split, sims in sims_by_split.items():
        extra.update(_extended(readers[split], sims, readers[split].image_ids[rows[split]]))
    write_eval_json(out, results, extra)
    write_headline_json(headline or out.with_name("headline.json"), results)
    write_recall_tsvs(plots, results)
    if settings.save_sims if save_sims is None else save_sims:
        target = sims_dir or Path("data/sims") / dataset
        for split, sims in sims_by_split.items():
            save_split_scores(target, split, sims, relevance[split], readers[split].image_ids[rows[split]],
                              readers[split].caption_ids)
    print_table(results)
    shapes = ", ".join(f"{split} {len(rows[split]):,} x {len(relevance[split]):,}" for split in readers)
    print(f"encoded and scored {shapes} in {scoring_s:.1f} s")
    for name, values in extra.items():
        typer.echo(f"{name}: " + ", ".join(f"{key} {value:.2f}" for key, value in values.items()))


def _check_five_per_image(readers: dict, relevance: dict) -> None:
    """Two-stage evaluation's folds and shortlists assume SCAN's layout: caption j of image j // 5."""
    import numpy as np

    from hsc.errors import HscError

    for split, images in relevance.items():
        if not np.array_equal(images, np.arange(len(images)) // 5):
            raise HscError(f"{readers[split].path}: evaluate.rerank_k needs 5 captions per image in image order "
                           "(SCAN's layout); set evaluate.rerank_k to 0 to score every pair")


def _extended(reader, sims, image_ids) -> dict:
    """ECCV Caption and CxC metrics of a COCO 5K split carrying COCO ids, else nothing."""
    from hsc.evaluation.extended import ABSENT_NOTE, eccv_metrics_class, extended_metrics

    if not str(reader.attrs.get("id_source", "")).startswith("coco ids") or len(image_ids) != 5000:
        return {}
    metrics_class = eccv_metrics_class()
    if metrics_class is None:
        typer.echo(ABSENT_NOTE)
        return {}
    return extended_metrics(metrics_class(), sims, image_ids, reader.caption_ids) or {}


if __name__ == "__main__":
    from hsc_app.cli import run_app

    run_app(app)
