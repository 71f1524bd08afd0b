"""Model configs: one typed config per family, nested in sections, and the table of variants.

This module is the single source of model defaults. A *family* is a model class with its
config (``cross_attention``: token-level encoders scored pair by pair by a head; ``hje``:
pooled vectors scored by a dot product; ``hgan``: token-level, three similarity levels). A
*variant* (``hsc``, ``saf``, ``sgr``, ``hje``, ``hgan``) is data: a family plus the fields it
sets differently from that family's defaults.

``params.yaml``'s ``model`` section is an overlay on a variant: ``name`` picks the variant and
every other key, when not null, replaces one field. Sections that the chosen family does not
have (``head`` for ``hje``) are ignored, so one params file serves every variant. It imports
no torch: every stage validates its params through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from hsc.errors import HscError, validation_error


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageConfig(Section):
    """Region features -> (R, E) regions (LHSC's image path)."""

    graph_blocks: int = Field(4, ge=0)  # region-graph reasoning blocks
    graph_heads: int = Field(4, ge=1)  # affinity heads per block


class TextConfig(Section):
    """Word ids -> (L, E) words (LHSC's text path)."""

    word_dim: int = Field(300, ge=8)
    attn_layers: int = Field(4, ge=0)  # text self-attention layers
    # masked: each caption attends over its own words; faithful: over its batch's padded length, as published.
    attn_padding: Literal["masked", "faithful"] = "masked"
    bi_gru: bool = True
    dropout: float = Field(0.4, ge=0, lt=1)  # on the word embeddings


class HeadConfig(Section):
    """The pair scorer of the cross-attention family (SGRAF's similarity encoder)."""

    kind: str = "saf"  # a name of hsc.models.heads.HEADS
    sim_dim: int = Field(256, ge=8)  # S
    sgr_steps: int = Field(3, ge=1)
    dropout: float = Field(0.4, ge=0, lt=1)  # in the global-vector branches
    attn_lambda: float = Field(9.0, gt=0)  # softmax temperature of the word-to-region attention


class JointConfig(Section):
    """The hierarchical joint embedding's two spaces (docs/models.md, "hje")."""

    spaces: Literal["both", "global"] = "both"  # global: the global space alone (ablation)
    local_dim: int = Field(256, ge=8)  # size of the local (concept) space
    local_weight: float = Field(1.0, ge=0)  # weight of the local-label loss; 0 trains the local space not at all
    head_dropout: float = Field(0.1, ge=0, lt=1)  # in the attention-pooling branches


class HganLevels(Section):
    """HGAN's multi-granularity aggregation and three-level similarity (docs/models.md, "hgan")."""

    groups: int = Field(8, ge=1)  # G soft region groups (the image's intermediate level)
    phrase_width: int = Field(3, ge=1)  # words per phrase (the caption's intermediate level); odd
    local_level: bool = True  # words x regions
    intermediate_level: bool = True  # phrases x region groups
    global_level: bool = True  # sentence x image
    local_weight: float = Field(1.0, gt=0)  # the score is the weighted mean of the levels that are on
    intermediate_weight: float = Field(1.0, gt=0)
    global_weight: float = Field(1.0, gt=0)
    attn_lambda: float = Field(9.0, gt=0)  # softmax temperature of the word-to-region and phrase-to-group attention
    dropout: float = Field(0.1, ge=0, lt=1)  # in the global attention-pooling branches


class SsamtLayers(Section):
    """SSAMT's phrase attention and word-to-region cross-attention (docs/models.md, "ssamt")."""

    heads: int = Field(2, ge=1)  # attention heads of both layers; divides embed_size and attn_dim
    attn_dim: int = Field(64, ge=1)  # size of the word-to-region cross-attention (its cost is per pair)


class FamilyConfig(Section):
    """Fields every family has; a family config adds its sections."""

    family: ClassVar[str]
    granularity: ClassVar[Literal["token", "pooled"]]
    embed_size: int = Field(1024, ge=8)  # E, the joint space


class CrossAttentionConfig(FamilyConfig):
    """Token-level encoders and a head that scores every pair (HSC, SGRAF's SAF and SGR)."""

    family: ClassVar[str] = "cross_attention"
    granularity: ClassVar[Literal["token", "pooled"]] = "token"
    image: ImageConfig = ImageConfig()
    text: TextConfig = TextConfig()
    head: HeadConfig = HeadConfig()
    # The shortlist vectors (two-stage evaluation): the head's attention-pooled global vectors, or a
    # projection of their own (hsc/models/shortlist.py) that train.shortlist_loss trains.
    shortlist: Literal["global", "projection"] = "global"


class HjeConfig(FamilyConfig):
    """Pooled vectors: [L2 local ; L2 global] per image and caption, scored by a dot product."""

    family: ClassVar[str] = "hje"
    granularity: ClassVar[Literal["token", "pooled"]] = "pooled"
    image: ImageConfig = ImageConfig(graph_blocks=0)
    text: TextConfig = TextConfig(attn_layers=0)
    joint: JointConfig = JointConfig()


class HganConfig(FamilyConfig):
    """Token-level feature graphs, aggregated at three granularities and scored by three similarities (HGAN)."""

    family: ClassVar[str] = "hgan"
    granularity: ClassVar[Literal["token", "pooled"]] = "token"
    image: ImageConfig = ImageConfig()
    text: TextConfig = TextConfig()
    hgan: HganLevels = HganLevels()


class SsamtConfig(FamilyConfig):
    """Token-level encoders, phrase attention over words and cross-attention to regions (SSAMT)."""

    family: ClassVar[str] = "ssamt"
    granularity: ClassVar[Literal["token", "pooled"]] = "token"
    image: ImageConfig = ImageConfig(graph_blocks=1)
    text: TextConfig = TextConfig(attn_layers=0)
    ssamt: SsamtLayers = SsamtLayers()


@dataclass(frozen=True)
class Variant:
    """A registered model name: a family config and the fields it sets (nested by section)."""

    config: type[FamilyConfig]
    model: str  # "module:Class" of the family's torch module, imported when built
    summary: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


_CROSS = "hsc.models.cross_attention:CrossAttentionModel"
VARIANTS: dict[str, Variant] = {
    "hsc": Variant(CrossAttentionConfig, _CROSS, "LHSC: region graph, text self-attention, SAF head"),
    "saf": Variant(CrossAttentionConfig, _CROSS, "SGRAF's SAF model",
                   {"image": {"graph_blocks": 0}, "text": {"attn_layers": 0}}),
    "sgr": Variant(CrossAttentionConfig, _CROSS, "SGRAF's SGR model",
                   {"image": {"graph_blocks": 0}, "text": {"attn_layers": 0}, "head": {"kind": "sgr"}}),
    "hje": Variant(HjeConfig, "hsc.models.hje:HierarchicalJointEmbedding",
                   "hierarchical joint embedding (Sun et al.): local + global spaces, dot product"),
    "hgan": Variant(HganConfig, "hsc.models.hgan:HierarchicalGraphAlignment",
                    "HGAN (Guo et al.): feature graphs, three granularities, three-level similarity"),
    "ssamt": Variant(SsamtConfig, "hsc.models.ssamt:SemanticStructureTransformer",
                     "SSAMT (Fan et al.): phrase attention over words, cross-attention to regions"),
}


@dataclass(frozen=True)
class DataShape:
    """What the prepared data fixes about a model: feature size, regions per image, vocabulary size."""

    img_dim: int  # D
    regions: int  # R (the image global branch has a BatchNorm1d(R))
    vocab_size: int


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: its variant name, resolved config and data shape."""

    name: str
    config: FamilyConfig
    data: DataShape

    @classmethod
    def resolve(cls, name: str, data: DataShape, overlay: Mapping[str, Any] | None = None) -> ModelSpec:
        """Variant ``name`` with ``overlay``'s non-null fields (params.yaml's ``model`` section, or nested dicts)."""
        return cls(name, resolve_config(name, overlay or {}), data)

    @property
    def variant(self) -> Variant:
        return VARIANTS[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.config.family, "config": self.config.model_dump(),
                "data": dict(vars(self.data))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Rebuild from :meth:`to_dict` output; any problem is one :class:`HscError` naming the key."""
        for key in ("name", "family", "config", "data"):
            if key not in data:
                raise HscError(f"model_config: missing key '{key}'")
        name = data["name"]
        if name not in VARIANTS:
            raise HscError(f"model_config: unknown model '{name}' (known: {', '.join(VARIANTS)})")
        config_cls = VARIANTS[name].config
        if data["family"] != config_cls.family:
            raise HscError(f"model_config: model '{name}' is of family {config_cls.family}, not {data['family']}")
        try:
            shape = DataShape(**data["data"])
        except TypeError as exc:
            raise HscError(f"model_config: data: {exc}") from None
        return cls(name, _validate(config_cls, data["config"], "model_config", prefix=""), shape)


def _validate(config_cls: type[FamilyConfig], fields: Mapping[str, Any], source: str, prefix: str) -> FamilyConfig:
    try:
        config = config_cls.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(exc, source, prefix) from None
    _check(config, source, prefix)
    return config


def _check(config: FamilyConfig, source: str, prefix: str) -> None:
    """Constraints across fields (a head's name is checked against the head table when built)."""
    image = getattr(config, "image", None)
    if image is not None and image.graph_blocks and config.embed_size % image.graph_heads:
        raise HscError(f"{source}: key '{prefix}image.graph_heads': {image.graph_heads} does not divide embed_size "
                       f"{config.embed_size}; each affinity head gets embed_size / graph_heads channels")
    ssamt = getattr(config, "ssamt", None)
    for size, name in ((config.embed_size, "embed_size"), (getattr(ssamt, "attn_dim", 0), "ssamt.attn_dim")):
        if ssamt is not None and size % ssamt.heads:
            raise HscError(f"{source}: key '{prefix}ssamt.heads': {ssamt.heads} does not divide {name} "
                           f"{size}; each attention head gets {name} / heads channels")
    levels = getattr(config, "hgan", None)
    if levels is not None and not (levels.local_level or levels.intermediate_level or levels.global_level):
        raise HscError(f"{source}: keys '{prefix}hgan.local_level', 'intermediate_level', 'global_level' are all "
                       f"false; set at least one to true (the score needs one similarity level)")
    if levels is not None and levels.phrase_width % 2 == 0:
        raise HscError(f"{source}: key '{prefix}hgan.phrase_width': {levels.phrase_width} is even; use an odd width "
                       f"so each phrase is centred on its word")


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay``'s non-null leaves written over it, section by section."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping):
            merged[key] = _merge(merged.get(key, {}), value)
        elif value is not None:
            merged[key] = value
    return merged


def resolve_config(name: str, overlay: Mapping[str, Any], source: str = "params") -> FamilyConfig:
    """The family config of variant ``name`` with ``overlay``'s non-null fields on top.

    ``overlay`` is params.yaml's ``model`` section; sections the family does not have are ignored.
    """
    if name not in VARIANTS:
        raise HscError(f"{source}: key 'model.name': unknown model '{name}' (known: {', '.join(VARIANTS)})")
    variant = VARIANTS[name]
    fields = variant.config().model_dump()
    fields = _merge(fields, variant.overrides)
    known = {key: value for key, value in overlay.items() if key in variant.config.model_fields}
    return _validate(variant.config, _merge(fields, known), source, prefix="model.")


# --- the params overlay: every field of every family's sections, optional -------------------

def _optional(section: type[Section]) -> type[BaseModel]:
    """A params model with ``section``'s fields, each optional and null by default (null: the variant's)."""
    fields = {name: (Optional[info.annotation], None) for name, info in section.model_fields.items()}
    return create_model(f"{section.__name__}Params", __config__=ConfigDict(extra="forbid"), **fields)


def _overlay_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for config_cls in {variant.config for variant in VARIANTS.values()}:
        for name, info in config_cls.model_fields.items():
            kind = info.annotation
            is_section = isinstance(kind, type) and issubclass(kind, Section)
            previous = fields.get(name)
            if previous is not None and previous[2] is not kind:
                raise TypeError(f"model section '{name}' has two types: {previous[2]} and {kind}")
            fields[name] = ((_optional(kind) if is_section else Optional[kind]),
                            (None if not is_section else _optional(kind)()), kind)
    return {name: (annotation, default) for name, (annotation, default, _) in sorted(fields.items())}


ModelOverlay = create_model("ModelOverlay", __config__=ConfigDict(extra="forbid"),
                            name=(str, "hsc"), **_overlay_fields())
