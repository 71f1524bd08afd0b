"""The model: config resolution, encoders, padding behaviour, the released key layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsc.errors import HscError
from hsc.models.config import VARIANTS, DataShape, ModelSpec
from hsc.models.layers import l2norm
from hsc.models.reference import loop_similarity
from hsc.models.registry import build_model
from hsc_app.params import ModelParams

D, R, V, E, WORD, S = 12, 5, 30, 16, 10, 8


def tiny_config(name: str = "hsc", image: dict | None = None, text: dict | None = None,
                head: dict | None = None) -> ModelSpec:
    """A tiny hsc-family spec: 2 graph blocks, 2 text attention layers, sections overridden as given."""
    return ModelSpec.resolve(name, DataShape(img_dim=D, regions=R, vocab_size=V), {
        "embed_size": E, "image": {"graph_blocks": 2, **(image or {})},
        "text": {"word_dim": WORD, "attn_layers": 2, **(text or {})}, "head": {"sim_dim": S, **(head or {})}})


def tokens_for(lengths: list[int], width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids padded with <pad> (0) to ``width`` columns."""
    gen = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    tokens = torch.randint(4, V, (len(lengths), width), generator=gen)
    tokens[torch.arange(width) >= lengths_t[:, None]] = 0
    return tokens, lengths_t


# --- config -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, blocks, layers, head", [("hsc", 4, 4, "saf"), ("saf", 0, 0, "saf"),
                                                         ("sgr", 0, 0, "sgr")])
def test_variants_fill_null_fields(name: str, blocks: int, layers: int, head: str) -> None:
    spec = ModelSpec.resolve(name, DataShape(img_dim=2048, regions=36, vocab_size=100), ModelParams(name=name).model_dump())
    config = spec.config
    assert (config.image.graph_blocks, config.text.attn_layers, config.head.kind) == (blocks, layers, head)
    assert (spec.data.img_dim, spec.data.regions, spec.data.vocab_size, spec.name) == (2048, 36, 100, name)
    assert name in VARIANTS


def test_explicit_fields_override_the_variant() -> None:
    params = ModelParams.model_validate({"name": "hsc", "image": {"graph_blocks": 1}, "head": {"kind": "sgr"}})
    config = ModelSpec.resolve("hsc", DataShape(8, 4, 10), params.model_dump()).config
    assert (config.image.graph_blocks, config.text.attn_layers, config.head.kind) == (1, 4, "sgr")


def test_config_round_trips_and_rejects_unknown_keys() -> None:
    cfg = tiny_config()
    assert ModelSpec.from_dict(cfg.to_dict()) == cfg
    bad = cfg.to_dict()
    bad["config"]["image"]["gcn_blocks"] = 2
    with pytest.raises(HscError, match="key 'image.gcn_blocks'"):
        ModelSpec.from_dict(bad)
    with pytest.raises(HscError, match="model.image.graph_heads"):
        tiny_config(image={"graph_heads": 3})


# --- encoders -----------------------------------------------------------------------------

def test_region_graph_blocks_start_as_identity() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    feats = torch.randn(3, R, D)
    regions = model.encode_images(feats)
    assert regions.shape == (3, R, E)
    assert torch.allclose(regions, l2norm(model.img_enc.fc(feats)), atol=1e-6)


def test_captions_are_unit_words_and_exactly_zero_past_their_length() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    tokens, lengths = tokens_for([5, 2, 7], 9)
    words = model.encode_captions(tokens, lengths)
    assert words.shape == (3, 9, E)
    real = torch.arange(9) < lengths[:, None]
    assert torch.allclose(words[real].norm(dim=-1), torch.ones(int(lengths.sum())), atol=1e-5)
    assert torch.equal(words[~real], torch.zeros_like(words[~real]))


def test_masked_text_attention_ignores_extra_padding() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(text={"attn_padding": "masked"})).eval()
    tokens, lengths = tokens_for([6, 3], 6)
    wider = F.pad(tokens, (0, 4))
    assert torch.allclose(model.encode_captions(tokens, lengths), model.encode_captions(wider, lengths)[:, :6],
                          atol=1e-6)


def test_faithful_text_attention_divides_by_the_padded_length_and_attends_to_padding() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(text={"attn_padding": "faithful", "attn_layers": 1})).eval()
    torch.nn.init.uniform_(model.txt_enc.embed.weight, -1, 1)  # a trained scale, so padding's effect is plain
    tokens, lengths = tokens_for([2], 5)  # 3 <pad> positions
    layer = model.txt_enc.W_att1
    x = model.txt_enc.embed(tokens)[0]  # (5, WORD), padding included
    local = torch.tanh(x @ layer.embedding_local[0].weight.t() + layer.embedding_local[0].bias)
    key = torch.tanh(x @ layer.embedding_global[0].weight.t() + layer.embedding_global[0].bias)
    value = torch.tanh(x @ layer.embedding_v[0].weight.t() + layer.embedding_v[0].bias)
    expected = (local @ key.t() / 5) @ value + x
    assert torch.allclose(layer(x[None], lengths)[0], expected, atol=1e-6)
    # Hence a caption's embedding moves with its batch's padding.
    alone = model.encode_captions(tokens[:, :2], lengths)
    padded = model.encode_captions(tokens, lengths)[:, :2]
    assert (alone - padded).abs().max() > 1e-3


@pytest.mark.parametrize("head", ["saf", "sgr"])
def test_padded_batch_scores_equal_each_caption_alone(head: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(head={"kind": head})).eval()
    feats = torch.randn(3, R, D)
    tokens, lengths = tokens_for([7, 2, 4, 1], 8)
    with torch.no_grad():
        img = model.encode_images(feats)
        scores = model.similarity(img, model.encode_captions(tokens, lengths), lengths)
        alone = torch.cat([model.similarity(img, model.encode_captions(tokens[j:j + 1, :n], lengths[j:j + 1]),
                                            lengths[j:j + 1]) for j, n in enumerate(lengths.tolist())], dim=1)
        looped = loop_similarity(model.sim_enc, img, model.encode_captions(tokens, lengths), lengths)
    assert scores.shape == (3, 4)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (scores - alone).abs().max() < 1e-5
    assert (scores - looped).abs().max() < 1e-5


def test_forward_is_the_square_batch_matrix_and_trains() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config()).train()
    feats = torch.randn(4, R, D)
    tokens, lengths = tokens_for([5, 3, 6, 2], 6)
    scores = model(feats, tokens, lengths)
    assert scores.shape == (4, 4)
    scores.sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
    assert model.img_enc.fc.weight.grad.abs().sum() > 0


def test_state_dict_follows_the_released_lhsc_layout() -> None:
    cfg = tiny_config(image={"graph_blocks": 4, "graph_heads": 4}, text={"attn_layers": 4})
    shapes = {key: tuple(value.shape) for key, value in build_model(cfg).state_dict().items()}
    assert shapes["img_enc.fc.weight"] == (E, D)
    assert shapes["img_enc.IM_GCN_4.theta3.weight"] == (E // 4, E, 1)
    assert shapes["img_enc.IM_GCN_1.phi.weight"] == (E // 4, E, 1)
    assert shapes["img_enc.IM_GCN_2.fc2.weight"] == (E, E)
    assert shapes["img_enc.IM_GCN_3.W.0.weight"] == (E, E, 1)
    assert shapes["img_enc.IM_GCN_3.W.1.running_var"] == (E,)
    assert shapes["txt_enc.embed.weight"] == (V, WORD)
    assert shapes["txt_enc.W_att4.embedding_v.0.weight"] == (WORD, WORD)
    assert shapes["txt_enc.cap_rnn.weight_hh_l0_reverse"] == (3 * E, E)
    assert shapes["sim_enc.v_global_w.embedding_local.1.running_mean"] == (R,)
    assert shapes["sim_enc.t_global_w.embedding_common.0.weight"] == (1, E)
    assert shapes["sim_enc.sim_tranloc_w.weight"] == (S, E)
    assert shapes["sim_enc.pool.bn.running_mean"] == (1,)
    sgr = build_model(tiny_config(head={"kind": "sgr", "sgr_steps": 3})).state_dict()
    assert tuple(sgr["sim_enc.pool.steps.2.sim_graph_w.weight"].shape) == (S, S)
    assert not any(key.startswith("sim_enc.pool.bn") for key in sgr)
