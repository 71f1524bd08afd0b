"""The one place models are built: a variant's family module, from a :class:`ModelSpec`."""

from __future__ import annotations

import importlib

from hsc.models.base import RetrievalModel
from hsc.models.config import ModelSpec


def build_model(spec: ModelSpec) -> RetrievalModel:
    """A freshly initialised model of ``spec`` (seed torch first for a reproducible init)."""
    module, _, cls = spec.variant.model.partition(":")
    return getattr(importlib.import_module(module), cls)(spec)
