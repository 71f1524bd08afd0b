"""The model variants and the one place models are built."""

from __future__ import annotations

from hsc.models.config import VARIANT_DEFAULTS, ModelConfig
from hsc.models.retrieval import RetrievalModel

# hsc: region graphs + text attention + SAF (LHSC); saf / sgr: the plain SGRAF models.
VARIANTS: tuple[str, ...] = tuple(VARIANT_DEFAULTS)


def build_model(cfg: ModelConfig) -> RetrievalModel:
    """A freshly initialised model of ``cfg`` (seed torch first for a reproducible init)."""
    return RetrievalModel(cfg)
