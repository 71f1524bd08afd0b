"""The resolved architecture of one model: everything needed to rebuild it from a checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from hsc.errors import HscError
from hsc.params import ModelParams

# What a variant sets when its params leave a field null.
VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "hsc": {"graph_blocks": 4, "text_attn_layers": 4, "head": "saf"},
    "saf": {"graph_blocks": 0, "text_attn_layers": 0, "head": "saf"},
    "sgr": {"graph_blocks": 0, "text_attn_layers": 0, "head": "sgr"},
}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and switches of a :class:`~hsc.models.retrieval.RetrievalModel` (no nulls left)."""

    name: str
    img_dim: int  # D, raw region feature size
    regions: int  # R, regions per image (the image global branch has a BatchNorm1d(R))
    vocab_size: int
    embed_size: int = 1024  # E
    word_dim: int = 300
    sim_dim: int = 256  # S
    graph_blocks: int = 4
    graph_heads: int = 4
    text_attn_layers: int = 4
    text_attn_padding: Literal["masked", "faithful"] = "masked"
    head: Literal["saf", "sgr"] = "saf"
    sgr_steps: int = 3
    bi_gru: bool = True
    embed_dropout: float = 0.4
    head_dropout: float = 0.4
    attn_lambda: float = 9.0

    def __post_init__(self) -> None:
        if self.name not in VARIANT_DEFAULTS:
            raise HscError(f"model.name: unknown variant {self.name!r} (known: {', '.join(VARIANT_DEFAULTS)})")
        if self.graph_blocks and self.embed_size % self.graph_heads:
            raise HscError(f"model.graph_heads: {self.graph_heads} does not divide model.embed_size "
                           f"{self.embed_size}; each affinity head gets embed_size / graph_heads channels")
        if self.text_attn_padding not in ("masked", "faithful"):
            raise HscError(f"model.text_attn_padding: expected 'masked' or 'faithful', got {self.text_attn_padding!r}")
        if self.head not in ("saf", "sgr"):
            raise HscError(f"model.head: expected 'saf' or 'sgr', got {self.head!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output; an unknown key is an error, a missing one takes its default."""
        known = {field.name for field in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise HscError(f"model_config: unknown key '{key}' (known: {', '.join(sorted(known))})")
        for key in ("name", "img_dim", "regions", "vocab_size"):
            if key not in data:
                raise HscError(f"model_config: missing key '{key}'")
        return cls(**data)


def resolve_model_config(params: ModelParams, img_dim: int, regions: int, vocab_size: int) -> ModelConfig:
    """The config of ``params.name`` for data of ``regions`` x ``img_dim`` features and ``vocab_size`` words."""
    fields = params.model_dump()
    for key, default in VARIANT_DEFAULTS[params.name].items():
        if fields[key] is None:
            fields[key] = default
    return ModelConfig(img_dim=img_dim, regions=regions, vocab_size=vocab_size, **fields)
