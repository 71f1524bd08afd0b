"""Map a released LHSC / SGRAF checkpoint onto hsc's model: the config and the state dict.

hsc's module tree keeps most released names (``img_enc.IM_GCN_1.theta``, ``txt_enc.W_att1``,
``sim_enc.v_global_w``...), so a key maps by prefixing its part; the renames are the heads:
SGRAF's ``SAF_module`` and LHSC's ``cal_sim_base_atten`` are hsc's ``pool``, and
``SGR_module.N`` is ``pool.steps.N`` (``RENAMES``). The architecture is read
from the weights' shapes; of the training options ``module_name`` (checked against the
weights) and ``lambda_softmax`` (the attention temperature) are used, and ``no_imgnorm`` /
``no_txtnorm`` are refused (hsc's encoders always L2-normalise).
"""

from __future__ import annotations

import re
from typing import Literal, Mapping

import torch

from hsc.errors import HscError
from hsc.legacy.safe_load import PARTS, ReleasedCheckpoint
from hsc.models.config import CrossAttentionConfig, DataShape, HeadConfig, ImageConfig, ModelSpec, TextConfig

RENAMES = {"sim_enc": {"SAF_module.": "pool.", "cal_sim_base_atten.": "pool.", "SGR_module.": "pool.steps."}}
# Older torch wrote BatchNorm without this counter; the model's own value stands in for it.
OPTIONAL_SUFFIXES = (".num_batches_tracked",)


def hsc_key(part: str, key: str) -> str:
    """The hsc state-dict key of a released ``key`` of ``part`` (img_enc / txt_enc / sim_enc)."""
    for old, new in RENAMES.get(part, {}).items():
        if key.startswith(old):
            key = new + key[len(old):]
    return f"{part}.{key}"


def model_config(released: ReleasedCheckpoint, vocab_size: int, vocab_name: str, regions: int,
                 text_attn_padding: Literal["masked", "faithful"] | None) -> ModelSpec:
    """The :class:`ModelSpec` the released weights describe (sizes from their shapes)."""
    _check_normalised(released)
    img, txt, sim = (released.parts[name] for name in PARTS)
    embed_size, img_dim = _shape(released, "img_enc", "fc.weight", dims=2)
    words, word_dim = _shape(released, "txt_enc", "embed.weight", dims=2)
    if words != vocab_size:
        raise HscError(f"{released.path}: txt_enc embed.weight has {words} rows but vocab {vocab_name} has "
                       f"{vocab_size} words; pass the vocabulary the checkpoint was trained with")
    sim_dim = _shape(released, "sim_enc", "sim_tranloc_w.weight", dims=2)[0]
    bn_regions = _shape(released, "sim_enc", "v_global_w.embedding_local.1.weight", dims=1)[0]
    if bn_regions != regions:
        raise HscError(f"{released.path}: sim_enc v_global_w.embedding_local.1 normalises {bn_regions} regions "
                       f"but --regions is {regions}; pass --regions {bn_regions}")
    head, sgr_steps = _head(released, sim)
    graph_blocks = _count(img, r"IM_GCN_(\d+)\.", first=1)
    text_attn_layers = _count(txt, r"W_att(\d+)\.", first=1)
    graph_heads = sum(1 for key in img if re.fullmatch(r"IM_GCN_1\.theta\d*\.weight", key)) or 4
    if text_attn_padding is None:
        # LHSC was trained with attention over the padded batch; only that reproduces its numbers.
        text_attn_padding = "faithful" if text_attn_layers else "masked"
    lhsc = bool(graph_blocks or text_attn_layers)
    config = CrossAttentionConfig(
        embed_size=embed_size,
        image=ImageConfig(graph_blocks=graph_blocks, graph_heads=graph_heads),
        text=TextConfig(word_dim=word_dim, attn_layers=text_attn_layers, attn_padding=text_attn_padding,
                        bi_gru="cap_rnn.weight_ih_l0_reverse" in txt),
        head=HeadConfig(kind=head, sim_dim=sim_dim, sgr_steps=sgr_steps, attn_lambda=_attention_temperature(released)),
    )
    return ModelSpec("hsc" if lhsc else head, config, DataShape(img_dim=img_dim, regions=regions, vocab_size=vocab_size))


def hsc_state_dict(released: ReleasedCheckpoint, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released weights under hsc's keys, checked key by key and shape by shape against ``expected``.

    The first unexpected key, wrong shape or missing key is one :class:`HscError` naming it.
    """
    mapped: dict[str, torch.Tensor] = {}
    for part, state in released.parts.items():
        for key, value in state.items():
            target = hsc_key(part, key)
            if target not in expected:
                raise HscError(f"{released.path}: unexpected key {part} {key}: hsc's model has no {target}")
            if tuple(value.shape) != tuple(expected[target].shape):
                raise HscError(f"{released.path}: {part} {key} has shape {tuple(value.shape)} but hsc's model "
                               f"expects {tuple(expected[target].shape)}")
            mapped[target] = value
    for target in expected:
        if target not in mapped and not target.endswith(OPTIONAL_SUFFIXES):
            part, key = target.split(".", 1)
            raise HscError(f"{released.path}: missing key {part} {key} (hsc's model needs {target})")
    return mapped


def _head(released: ReleasedCheckpoint, sim: Mapping[str, torch.Tensor]) -> tuple[Literal["saf", "sgr"], int]:
    """The similarity head (saf / sgr) and SGR's step count, checked against ``opt.module_name``."""
    sgr_steps = _count(sim, r"SGR_module\.(\d+)\.", first=0)
    has_saf = any(key.startswith(("SAF_module.", "cal_sim_base_atten.")) for key in sim)
    if bool(sgr_steps) == has_saf:
        found = "both SAF and SGR" if has_saf else "neither SAF_module / cal_sim_base_atten nor SGR_module"
        raise HscError(f"{released.path}: sim_enc holds {found} weights; cannot tell the similarity head")
    head: Literal["saf", "sgr"] = "sgr" if sgr_steps else "saf"
    named = released.opt.get("module_name")
    if isinstance(named, str) and named.upper() in ("SAF", "SGR") and named.lower() != head:
        raise HscError(f"{released.path}: opt.module_name is {named!r} but sim_enc holds {head.upper()} weights")
    return head, sgr_steps or 3


def _check_normalised(released: ReleasedCheckpoint) -> None:
    """Refuse options that switch off the L2 normalisation hsc's model always applies."""
    for option in ("no_imgnorm", "no_txtnorm"):
        if released.opt.get(option):
            raise HscError(f"{released.path}: opt.{option} is set, but hsc's model always L2-normalises "
                           f"its {'image' if option == 'no_imgnorm' else 'text'} features; "
                           "this checkpoint cannot be scored as trained")


def _attention_temperature(released: ReleasedCheckpoint) -> float:
    value = released.opt.get("lambda_softmax", 9.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HscError(f"{released.path}: opt.lambda_softmax should be a positive number, not {value!r}")
    return float(value)


def _count(state: Mapping[str, torch.Tensor], pattern: str, first: int) -> int:
    """How many numbered modules ``pattern`` names, from ``first`` to the highest number.

    A gap is not filled in here: the key check then reports the missing module's keys.
    """
    numbers = [int(m.group(1)) for key in state if (m := re.match(pattern, key))]
    return max(numbers) - first + 1 if numbers else 0


def _shape(released: ReleasedCheckpoint, part: str, key: str, dims: int) -> tuple[int, ...]:
    state = released.parts[part]
    if key not in state:
        raise HscError(f"{released.path}: missing key {part} {key}; not an LHSC / SGRAF checkpoint")
    shape = tuple(state[key].shape)
    if len(shape) != dims:
        raise HscError(f"{released.path}: {part} {key} has shape {shape}, expected {dims} dimensions")
    return shape

