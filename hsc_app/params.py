"""Typed, validated parameters: one pydantic model per section of ``params.yaml``.

Every stage reads the whole file through :func:`load_params`, so a typo or a bad value is
reported once, as one line naming the file and the key, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Hashable, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hsc.data.config import PrepareParams, RawDataParams
from hsc.errors import HscError, validation_error
from hsc.models.config import ModelOverlay, resolve_config

MIN_RERANK_K = 10  # the largest R@K reported


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# params.yaml's model section: ``name`` picks a registered variant, other keys override its
# config when not null (hsc/models/config.py holds the families' defaults).
ModelParams = ModelOverlay


class TrainParams(Section):
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(2e-4, gt=0)
    lr_update: int = Field(20, ge=1)  # lr x 0.1 every this many epochs
    margin: float = Field(0.2, ge=0)
    max_violation: bool = True  # hardest negative (VSE++) vs. sum over negatives
    max_violation_warmup: int = Field(0, ge=0)  # epochs of sum over negatives before the hardest (VSE-infinity)
    phrase_loss: float = Field(0.0, ge=0)  # weight of the phrase-level hinge loss (needs prepare.phrases); 0: off
    grad_clip: float = Field(2.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Union[bool, Literal["auto"]] = "auto"  # auto: fp16 on CUDA, fp32 on CPU; true: also bf16 on CPU; false: fp32 (hsc/training/precision.py)
    seed: int = 0
    val_every_steps: int = Field(0, ge=0)  # 0: validate at the end of each epoch only
    workers: int = Field(0, ge=0)
    init: Optional[str] = None  # hsc checkpoint to fine-tune from (e.g. made by `hsc import`)
    nproc_per_node: int = Field(1, ge=1)  # > 1 (or nnodes > 1): `hsc train` runs itself under torchrun
    nnodes: int = Field(1, ge=1)
    rdzv_endpoint: Optional[str] = None  # host:port of the multi-node rendezvous (else $HSC_RDZV_ENDPOINT)
    # Weight of a term on the shortlist vectors' batch cosines (two-stage evaluation); 0: the published recipe.
    shortlist_loss: float = Field(0.0, ge=0)
    shortlist_objective: Literal["hinge", "infonce"] = "hinge"  # hinge: the main loss's margin and negatives; infonce: below
    shortlist_temperature: float = Field(0.05, gt=0)


class EvaluateParams(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    encode_batch: int = Field(128, ge=1)
    img_block: int = Field(128, ge=1)  # images x captions scored at once
    cap_block: int = Field(256, ge=1)
    save_sims: bool = False
    # Two-stage evaluation (hsc/evaluation/rerank.py): shortlist the top rerank_k candidates per query
    # with pooled vectors, score only those with the head. 0: every pair (the published protocol).
    rerank_k: int = Field(0, ge=0)
    shortlist_checkpoint: Optional[str] = None  # a pooled-family checkpoint to shortlist with; null: the model's own
    shortlist_index: Literal["matmul", "faiss"] = "matmul"  # faiss: an exact inner-product index (pip install hsc[faiss])

    @field_validator("rerank_k")
    @classmethod
    def _rerank_k(cls, value: int) -> int:
        if 0 < value < MIN_RERANK_K:
            raise ValueError(f"must be 0 (exact) or at least {MIN_RERANK_K}, so a shortlist miss is a miss at R@10")
        return value


class Params(RawDataParams):
    """The whole file: the library's data settings (dataset, download, synthetic, coco_format,
    prepare), the model overlay, and the app's training and evaluation sections."""

    # torch's CPU threads in each stage's process (hsc/threads.py); 0: torch's default. Top-level, not
    # in a stage's section, because it changes speed, not results: no stage lists it in dvc.yaml, so a
    # change re-runs nothing, and training's resume fingerprint (the train section) ignores it.
    threads: int = Field(0, ge=0)
    prepare: PrepareParams = PrepareParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the
    last silently, so an edit further down the file would quietly override the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in seen:
                raise _DuplicateKey(f"key '{key}' appears twice, on lines {seen[key]} and {line}; keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping of the params file (YAML keeps the last one silently)."""


def load_stage_params(path: str | Path) -> Params:
    """The params a stage command runs with: :func:`load_params`, then torch's threads set from
    them (``threads`` / ``$HSC_THREADS``) before any heavy work."""
    from hsc.threads import apply_threads

    params = load_params(path)
    apply_threads(params.threads)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; any problem becomes one :class:`HscError` line."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except FileNotFoundError:
        raise HscError(f"{path}: no such params file; run from the project root or pass --params") from None
    except OSError as exc:
        raise HscError(f"{path}: cannot read the params file ({exc.strerror})") from None
    except _DuplicateKey as exc:
        raise HscError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise HscError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise HscError(f"{path}: expected a mapping of sections at the top level")
    return parse_params(raw, source=str(path))


def parse_params(raw: dict, source: str = "params") -> Params:
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, source) from None
    resolve_config(params.model.name, params.model.model_dump(), source)  # the model's values, checked up front
    return params
