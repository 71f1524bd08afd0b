"""`hsc rerank-sweep`: two-stage evaluation at several k against the exact one, timed, as a DVC plot TSV."""

from __future__ import annotations

from pathlib import Path

import typer


def rerank_sweep(
    checkpoint: Path = typer.Option(..., help="hsc checkpoint of a cross-attention model."),
    data: Path = typer.Option(..., help="Prepared directory from `hsc prepare`."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (section evaluate; rerank_k is ignored)."),
    ks: str = typer.Option("16,32,64,128", help="Shortlist sizes, comma-separated (each at least 10)."),
    out: Path = typer.Option(Path("metrics/rerank.tsv"), help="TSV: k, rsum, exact_rsum, ground-truth shares, "
                                                             "pairs, seconds (the dataset's first protocol)."),
) -> None:
    """Score the test split exactly once, then re-rank at each k; print every protocol, write the plot TSV."""
    import time

    from rich.console import Console
    from rich.table import Table

    from hsc.atomic import write_text
    from hsc.checkpoint import check_fits, load_model
    from hsc.data.store import SplitReader
    from hsc.devices import resolve_device
    from hsc.errors import HscError
    from hsc.evaluation.protocols import protocols_for, run_protocols, scored_image_rows
    from hsc.evaluation.rerank import split_vectors, two_stage_protocols
    from hsc.evaluation.scoring import encode_split, score_matrix
    from hsc_app.params import MIN_RERANK_K, load_params

    try:
        sizes = [int(k) for k in ks.split(",")]
    except ValueError:
        raise HscError(f"--ks: {ks!r} is not comma-separated integers, e.g. 16,32,64,128") from None
    if min(sizes) < MIN_RERANK_K:
        raise HscError(f"--ks: every k must be at least {MIN_RERANK_K}, got {min(sizes)}")
    settings = load_params(params).evaluate
    device = resolve_device(settings.device, "evaluate.device")
    model, stored = load_model(checkpoint, device)
    if model.granularity == "pooled":
        raise HscError(f"{checkpoint}: a pooled model's scores are exact already; sweep a cross-attention model")
    reader = SplitReader(data / "test.h5")
    check_fits(checkpoint, stored, reader)
    rows = scored_image_rows(reader.n_images, reader.caption_image, str(reader.path))
    protocols = [p for p in protocols_for(str(reader.attrs["dataset"]), {"test": len(rows)}) if p.split == "test"]
    emb = encode_split(model, reader, batch_size=settings.encode_batch, device=device)
    started = time.perf_counter()
    sims = score_matrix(model, emb, img_block=settings.img_block, cap_block=settings.cap_block, device=device)
    exact_seconds = time.perf_counter() - started
    exact = run_protocols(protocols, {"test": sims})
    vectors = split_vectors(model, emb, reader, settings, device)
    sweeps = {k: two_stage_protocols(model, emb, vectors, protocols, k, index=settings.shortlist_index,
                                     cap_block=settings.cap_block, device=device) for k in sizes}

    table = Table(title=f"two-stage vs exact ({checkpoint})")
    for column in ("protocol", "k", "rsum", "d rsum", "i2t R@1", "t2i R@1", "gt in shortlist i2t/t2i %",
                   "pairs", "seconds"):
        table.add_column(column, justify="left" if column == "protocol" else "right")
    for index, protocol in enumerate(protocols):
        ref = exact[index].metrics
        table.add_row(protocol.name, "exact", f"{ref['rsum']:.2f}", "", f"{ref['i2t_r1']:.2f}", f"{ref['t2i_r1']:.2f}",
                      "100/100", str(sims.size), f"{exact_seconds:.1f}")
        for k, results in sweeps.items():
            got, extra = results[index].metrics, results[index].extra
            table.add_row("", str(k), f"{got['rsum']:.2f}", f"{got['rsum'] - ref['rsum']:+.2f}", f"{got['i2t_r1']:.2f}",
                          f"{got['t2i_r1']:.2f}", f"{extra['gt_in_shortlist_i2t']:.1f}/{extra['gt_in_shortlist_t2i']:.1f}",
                          str(extra["pairs_scored"]), f"{extra['seconds']:.1f}")
    Console().print(table)
    lines = ["k\trsum\texact_rsum\tgt_in_shortlist_i2t\tgt_in_shortlist_t2i\tpairs_scored\tseconds"]
    for k, results in sweeps.items():
        extra = results[0].extra
        lines.append(f"{k}\t{results[0].metrics['rsum']:.2f}\t{exact[0].metrics['rsum']:.2f}\t"
                     f"{extra['gt_in_shortlist_i2t']:.2f}\t{extra['gt_in_shortlist_t2i']:.2f}\t"
                     f"{extra['pairs_scored']}\t{extra['seconds']:.2f}")
    write_text(out, "\n".join(lines) + "\n")
