"""HGAN's three similarity levels: each one counts, one alone is the score, and one must stay on."""

from __future__ import annotations

import pytest
import torch

from hsc.errors import HscError
from hsc.models.config import DataShape, ModelSpec
from hsc.models.hgan import HierarchicalGraphAlignment
from hsc.models.registry import build_model
from hsc_app.params import ModelParams

from test_families import inputs

LEVELS = ("local", "intermediate", "global")
SHAPE = DataShape(img_dim=12, regions=5, vocab_size=30)
WEIGHTS = {"local_weight": 1.0, "intermediate_weight": 2.0, "global_weight": 0.5}


def hgan(**levels: bool) -> HierarchicalGraphAlignment:
    """A tiny eval-mode hgan with the given ``<level>_level`` switches and unequal level weights."""
    torch.manual_seed(0)
    switches = {f"{level}_level": on for level, on in levels.items()}
    spec = ModelSpec.resolve("hgan", SHAPE, {"embed_size": 16, "image": {"graph_blocks": 1},
                                             "text": {"word_dim": 8, "attn_layers": 1},
                                             "hgan": {"groups": 3, **WEIGHTS, **switches}})
    return build_model(spec).eval()


def with_weights_of(model: HierarchicalGraphAlignment, full: HierarchicalGraphAlignment):
    """``model`` holding ``full``'s weights (it lacks the modules of its levels that are off)."""
    missing, _ = model.load_state_dict(full.state_dict(), strict=False)
    assert not missing
    return model


@torch.no_grad()
def scores(model: HierarchicalGraphAlignment) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    feats, tokens, lengths = inputs()
    img, cap = model.encode_images(feats), model.encode_captions(tokens, lengths)
    return model.similarity(img, cap, lengths), model.level_similarities(img, cap, lengths)


def test_the_score_is_the_weighted_mean_of_the_three_levels() -> None:
    score, sims = scores(hgan())
    assert set(sims) == set(LEVELS)
    weights = [WEIGHTS[f"{level}_weight"] for level in LEVELS]
    expected = sum(w * sims[level] for w, level in zip(weights, LEVELS)) / sum(weights)
    assert torch.allclose(score, expected, atol=1e-6)
    assert all(sims[a].sub(sims[b]).abs().max() > 1e-3 for a in LEVELS for b in LEVELS if a < b)


@pytest.mark.parametrize("off", LEVELS)
def test_switching_one_level_off_changes_the_score_and_drops_that_level(off: str) -> None:
    full = hgan()
    full_score, full_sims = scores(full)
    score, sims = scores(with_weights_of(hgan(**{off: False}), full))
    assert set(sims) == set(LEVELS) - {off}
    assert (score - full_score).abs().max() > 1e-3
    for level in sims:  # the remaining levels are unchanged
        assert torch.allclose(sims[level], full_sims[level], atol=1e-6)


@pytest.mark.parametrize("on", LEVELS)
def test_one_level_alone_is_the_score(on: str) -> None:
    full = hgan()
    _, full_sims = scores(full)
    score, _ = scores(with_weights_of(hgan(**{level: level == on for level in LEVELS}), full))
    assert torch.allclose(score, full_sims[on], atol=1e-6)


def test_every_level_off_is_a_one_line_error() -> None:
    params = ModelParams.model_validate({"name": "hgan", "hgan": {f"{level}_level": False for level in LEVELS}})
    with pytest.raises(HscError, match="'model.hgan.local_level'.*all false; set at least one") as err:
        ModelSpec.resolve("hgan", SHAPE, params.model_dump())
    assert "\n" not in str(err.value)


def test_an_even_phrase_width_is_a_one_line_error() -> None:
    with pytest.raises(HscError, match="'model.hgan.phrase_width': 4 is even"):
        ModelSpec.resolve("hgan", SHAPE, {"hgan": {"phrase_width": 4}})


@torch.no_grad()
def test_phrases_read_only_the_real_words() -> None:
    model = hgan()
    words = torch.randn(2, 6, 16)
    lengths = torch.tensor([3, 6])
    phrases = model.txt_phrases(words, lengths)
    changed = words.clone()
    changed[0, 3:] = 7.0  # padding of caption 0 holds garbage
    assert torch.equal(model.txt_phrases(changed, lengths), phrases)
    assert not phrases[0, 3:].any()
