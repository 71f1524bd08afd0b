"""Shortlist vectors of their own (``model.shortlist: projection``) and the shortlist terms that train them."""

from __future__ import annotations

import pytest
import torch

from hsc.checkpoint import load_model
from hsc.errors import HscError
from hsc.loss import ContrastiveLoss, InfoNCELoss, RankingObjective, ShortlistObjective
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc.models.text import masked_max
from hsc_app.params import Params
from hsc_app.training.loop import Trainer

SHAPE = DataShape(img_dim=8, regions=4, vocab_size=20)
SIZES = {"embed_size": 16, "text": {"word_dim": 8}, "head": {"sim_dim": 8}}


def tiny_model(shortlist: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelSpec.resolve("hsc", SHAPE, {**SIZES, "shortlist": shortlist})).eval()


def batch(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 3, 2, 5])
    tokens = torch.randint(4, 20, (4, 6), generator=generator)
    tokens[torch.arange(6) >= lengths[:, None]] = 0
    return type("Batch", (), {"images": torch.randn(4, 4, 8, generator=generator), "tokens": tokens,
                              "lengths": lengths, "phrases": None})()


def test_projection_vectors_are_unit_and_depend_on_one_item_alone() -> None:
    model, pairs = tiny_model("projection"), batch()
    img = model.encode_images(pairs.images)
    cap = model.encode_captions(pairs.tokens, pairs.lengths)
    img_vec, cap_vec = model.shortlist_vectors(img, cap, pairs.lengths)
    assert img_vec.shape == cap_vec.shape == (4, 16)
    assert torch.allclose(img_vec.norm(dim=1), torch.ones(4)) and torch.allclose(cap_vec.norm(dim=1), torch.ones(4))
    padded = torch.cat([cap, torch.zeros(4, 3, 16)], dim=1)  # longer padding and other companions change nothing
    _, alone = model.shortlist_vectors(img[2:3], padded[2:3, :2], pairs.lengths[2:3])
    assert torch.allclose(model.shortlist_vectors(img, padded, pairs.lengths)[1], cap_vec, atol=1e-6)
    assert torch.allclose(alone[0], cap_vec[2], atol=1e-6)
    global_img, _ = tiny_model("global").shortlist_vectors(img, cap, pairs.lengths)
    assert not torch.allclose(global_img, img_vec)


def test_the_projection_leaves_the_head_and_its_initial_weights_alone() -> None:
    plain, projected, pairs = tiny_model("global"), tiny_model("projection"), batch()
    assert plain.shortlist is None and projected.shortlist is not None
    args = (pairs.images, pairs.tokens, pairs.lengths)
    assert torch.equal(plain(*args), projected(*args))  # built last: the same seed gives the same model besides it


def test_the_projection_term_trains_the_projection_and_encoders_not_the_head() -> None:
    model, pairs = tiny_model("projection").train(), batch()
    img_vec, cap_vec = model.shortlist_vectors(model.encode_images(pairs.images),
                                               model.encode_captions(pairs.tokens, pairs.lengths), pairs.lengths)
    ContrastiveLoss(margin=0.2, max_violation=False)(img_vec @ cap_vec.t()).backward()
    assert all(p.grad is None for p in model.sim_enc.parameters())
    assert model.shortlist.image.expand.weight.grad.abs().sum() > 0
    assert model.shortlist.text.expand.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.img_enc.parameters())


def test_masked_max_ignores_padding_whatever_it_holds() -> None:
    tokens = torch.tensor([[[1.0, -2.0], [3.0, -1.0], [99.0, 99.0]],
                           [[-5.0, 4.0], [-7.0, 8.0], [0.0, 0.0]]])
    assert torch.equal(masked_max(tokens, torch.tensor([2, 1])), torch.tensor([[3.0, -1.0], [-5.0, 4.0]]))
    assert torch.equal(masked_max(tokens), torch.tensor([[99.0, 99.0], [0.0, 8.0]]))


def test_a_checkpoint_config_without_the_key_keeps_the_global_vectors() -> None:
    stored = ModelSpec.resolve("hsc", SHAPE, SIZES).to_dict()
    del stored["config"]["shortlist"]  # as written before the key existed
    assert ModelSpec.from_dict(stored).config.shortlist == "global"


def test_infonce_is_the_symmetric_cross_entropy_summed_over_queries() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.1], [0.4, 0.0, 0.7]])
    tau = 0.1
    expected = -sum(torch.log_softmax(scores[i] / tau, 0)[i] + torch.log_softmax(scores[:, i] / tau, 0)[i]
                    for i in range(3))
    assert InfoNCELoss(tau)(scores).item() == pytest.approx(expected.item(), rel=1e-6)
    assert InfoNCELoss(tau)(scores.t()).item() == pytest.approx(expected.item(), rel=1e-6)
    worse = scores.clone()
    worse[0, 1] = 0.95  # a negative above its positive costs more
    assert InfoNCELoss(tau)(worse) > InfoNCELoss(tau)(scores)


def test_shortlist_objective_adds_infonce_on_the_projection() -> None:
    model, pairs = tiny_model("projection"), batch()
    ranking, nce = ContrastiveLoss(margin=0.2, max_violation=False), InfoNCELoss(0.05)
    plain = RankingObjective(ranking)(model, pairs)
    img_vec, cap_vec = model.shortlist_vectors(model.encode_images(pairs.images),
                                               model.encode_captions(pairs.tokens, pairs.lengths), pairs.lengths)
    total = ShortlistObjective(RankingObjective(ranking), nce, 0.5)(model, pairs)
    assert total.item() == pytest.approx(plain.item() + 0.5 * nce(img_vec @ cap_vec.t()).item(), rel=1e-5)


def test_an_untrained_projection_is_refused(tiny_prepared, tiny_params_dict, tmp_path) -> None:
    raw = {**tiny_params_dict, "model": {**tiny_params_dict["model"], "shortlist": "projection"}}
    with pytest.raises(HscError, match="model.shortlist: projection .* train.shortlist_loss"):
        Trainer(Params.model_validate(raw), tiny_prepared, tmp_path / "ckpt", tmp_path / "m")


def test_the_projection_trains_end_to_end(tiny_prepared, tiny_params_dict, tmp_path) -> None:
    raw = {**tiny_params_dict, "model": {**tiny_params_dict["model"], "shortlist": "projection"},
           "train": {**tiny_params_dict["train"], "epochs": 1, "shortlist_loss": 1.0,
                     "shortlist_objective": "infonce"}}
    result = Trainer(Params.model_validate(raw), tiny_prepared, tmp_path / "ckpt", tmp_path / "m").run()
    model, _ = load_model(result.best_path)
    assert model.spec.config.shortlist == "projection" and model.shortlist is not None
