"""`hsc import`: turn a released LHSC / SGRAF ``model_best.pth.tar`` into an hsc checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer


def import_checkpoint(
    source: Path = typer.Argument(..., help="The released checkpoint (model_best.pth.tar) of LHSC or SGRAF "
                                            "(SAF or SGR); read without running any code from it."),
    vocab: Path = typer.Option(..., help="the released vocab JSON the checkpoint was trained with "
                                         "(also set prepare.vocab to it before `dvc repro prepare`)."),
    out: Path = typer.Option(..., help="The hsc checkpoint to write, e.g. data/checkpoints/lhsc_f30k.pt."),
    text_attn_padding: Optional[Literal["masked", "faithful"]] = typer.Option(
        None, help="Text self-attention over padding: 'faithful' (LHSC's default: as trained, each caption "
             "attends over its batch's padded length) or 'masked' (each caption over its own words)."),
    regions: int = typer.Option(36, min=1, help="Regions per image of the features it will score "
                                                "(SCAN's features: 36)."),
) -> None:
    """Check a released checkpoint key by key against hsc's model and write an hsc checkpoint
    that `hsc evaluate --checkpoint` scores and `hsc train --init` fine-tunes."""
    from hsc.models.cross_attention import PUBLISHED_CAPTION_BATCH
    from hsc.legacy.importer import import_released

    result = import_released(source, vocab, out, regions=regions, text_attn_padding=text_attn_padding)
    spec = result.spec
    config = spec.config
    padding = f", text attention {config.text.attn_padding}" if config.text.attn_layers else ""
    trained = f" (epoch {result.source_epoch}, dev rsum {result.source_best_rsum})" \
        if result.source_epoch is not None else ""
    print(f"{result.out}: {spec.name} model with head {config.head.kind}{padding}, {result.tensors} tensors "
          f"from {source}{trained}")
    if config.text.attn_layers and config.text.attn_padding == "faithful":
        # Faithful padding makes a caption's embedding depend on its batch; evaluation fixes the batch.
        print(f"captions are encoded in LHSC's batches of {PUBLISHED_CAPTION_BATCH} automatically, "
              "as its evaluation did (whatever evaluate.encode_batch says)")
