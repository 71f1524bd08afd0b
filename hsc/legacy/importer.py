"""Turn a released LHSC / SGRAF checkpoint into an hsc checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hsc.checkpoint import save_checkpoint
from hsc.data.vocab import Vocabulary
from hsc.hashing import sha256_file
from hsc.legacy.lhsc import hsc_state_dict, model_config
from hsc.legacy.safe_load import load_released
from hsc.models.config import ModelSpec
from hsc.models.registry import build_model


@dataclass(frozen=True)
class ImportResult:
    """What was written, for the command's summary line."""

    out: Path
    spec: ModelSpec
    tensors: int
    source_epoch: int | None
    source_best_rsum: float | None


def import_released(source: Path, vocab_path: Path, out: Path, *, regions: int = 36,
                    text_attn_padding: Literal["masked", "faithful"] | None = None) -> ImportResult:
    """Check ``source`` against hsc's model key by key and write it to ``out`` as an hsc checkpoint.

    ``text_attn_padding`` None picks ``faithful`` for LHSC (its weights were trained that way).
    The checkpoint records ``vocab_path``'s hash, so only data prepared with it is scored.
    """
    released = load_released(source)
    vocab = Vocabulary.load(vocab_path)
    spec = model_config(released, vocab_size=len(vocab), vocab_name=str(vocab_path), regions=regions,
                        text_attn_padding=text_attn_padding)
    model = build_model(spec)
    weights = hsc_state_dict(released, model.state_dict())
    model.load_state_dict(weights, strict=False)  # strict=False only for the optional BatchNorm counters
    provenance = {"file": source.name, "sha256": sha256_file(source), "epoch": released.epoch,
                  "best_rsum": released.best_rsum, "data_name": released.opt.get("data_name")}
    save_checkpoint(out, model, vocab_sha256=vocab.sha256, imported_from=provenance)
    return ImportResult(out=out, spec=spec, tensors=len(weights), source_epoch=released.epoch,
                        source_best_rsum=released.best_rsum)
