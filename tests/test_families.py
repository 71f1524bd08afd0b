"""Every registered model, through the one interface: a new registry entry is covered without editing this file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hsc.checkpoint import load_model, save_checkpoint
from hsc.data.batches import PairDataset, collate_pairs
from hsc.data.phrase_units import membership
from hsc.data.store import SplitReader
from hsc.errors import HscError
from hsc.evaluation.scoring import encode_split, score_matrix
from hsc.loss import ContrastiveLoss
from hsc.models.config import VARIANTS, DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc.training.step import optimisation_step

D, R, V = 12, 5, 30
TINY = {"embed_size": 16, "text": {"word_dim": 8}, "head": {"sim_dim": 8}, "joint": {"local_dim": 8}}


def tiny_model(name: str, shape: DataShape = DataShape(img_dim=D, regions=R, vocab_size=V), seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelSpec.resolve(name, shape, TINY))


def inputs(n_images: int = 3, lengths: tuple[int, ...] = (7, 2, 4, 1, 6), seed: int = 1,
           shape: DataShape = DataShape(img_dim=D, regions=R, vocab_size=V)):
    gen = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    tokens = torch.randint(4, shape.vocab_size, (len(lengths), max(lengths)), generator=gen)
    tokens[torch.arange(max(lengths)) >= lengths_t[:, None]] = 0
    return torch.randn(n_images, shape.regions, shape.img_dim, generator=gen), tokens, lengths_t


def phrases_of(lengths: torch.Tensor) -> torch.Tensor:
    """Parsed phrases as a parser might give them: the words' first half an entity, and a triple
    (first word, second word, last word) when there are four words or more."""
    units = []
    for n in lengths.tolist():
        words = n - 2
        own = [((1, 1 + (words + 1) // 2),)] if words > 0 else []
        units.append(own + ([((1, 2), (2, 3), (n - 2, n - 1))] if words >= 4 else []))
    return membership(units, lengths, int(lengths.max()))


def warm_up(model: torch.nn.Module) -> torch.nn.Module:
    """One training-mode forward so BatchNorm statistics are not their initial values."""
    feats, tokens, lengths = inputs(n_images=5, seed=2, shape=model.spec.data)
    with torch.no_grad():
        model.train()(feats, tokens, lengths, phrases=phrases_of(lengths))
    return model.eval()


@pytest.fixture(params=sorted(VARIANTS))
def name(request) -> str:
    return request.param


@torch.no_grad()
def test_encodings_have_the_shapes_of_their_granularity(name: str) -> None:
    model = warm_up(tiny_model(name))
    feats, tokens, lengths = inputs()
    img, cap = model.encode_images(feats), model.encode_captions(tokens, lengths, phrases_of(lengths))
    if model.granularity == "token":
        assert img.shape[:2] == (3, R) and cap.shape[:2] == (5, int(lengths.max()))
    else:
        assert img.dim() == cap.dim() == 2 and img.shape[1] == cap.shape[1]
    scores = model.similarity(img, cap, lengths)
    assert scores.shape == (3, 5) and torch.isfinite(scores).all()
    assert scores.std() > 1e-6


@torch.no_grad()
def test_batched_scores_equal_each_pair_scored_alone(name: str) -> None:
    model = warm_up(tiny_model(name))
    feats, tokens, lengths = inputs()
    phrases = phrases_of(lengths)
    batched = model.similarity(model.encode_images(feats), model.encode_captions(tokens, lengths, phrases), lengths)
    for i in range(len(feats)):
        img = model.encode_images(feats[i:i + 1])
        for j, n in enumerate(lengths.tolist()):
            cap = model.encode_captions(tokens[j:j + 1, :n], lengths[j:j + 1], phrases[j:j + 1, :, :n])
            assert torch.allclose(model.similarity(img, cap, lengths[j:j + 1])[0, 0], batched[i, j], atol=1e-5)


def test_checkpoint_round_trip_rebuilds_the_same_model(name: str, tmp_path: Path) -> None:
    model = warm_up(tiny_model(name))
    save_checkpoint(tmp_path / "m.pt", model, vocab_sha256="00" * 32)
    loaded, checkpoint = load_model(tmp_path / "m.pt")
    assert ModelSpec.from_dict(checkpoint["model_config"]) == model.spec
    feats, tokens, lengths = inputs()
    phrases = phrases_of(lengths)
    with torch.no_grad():
        got = loaded.similarity(loaded.encode_images(feats), loaded.encode_captions(tokens, lengths, phrases), lengths)
        want = model.similarity(model.encode_images(feats), model.encode_captions(tokens, lengths, phrases), lengths)
    assert torch.equal(got, want)


@torch.no_grad()
def test_phrases_reach_only_the_models_that_read_them(name: str) -> None:
    model = warm_up(tiny_model(name))
    feats, tokens, lengths = inputs()
    img = model.encode_images(feats)
    with_phrases = model.similarity(img, model.encode_captions(tokens, lengths, phrases_of(lengths)), lengths)
    if model.reads_phrases:
        with pytest.raises(HscError, match="prepare.phrases: true"):
            model.encode_captions(tokens, lengths)
    else:
        assert torch.equal(with_phrases, model.similarity(img, model.encode_captions(tokens, lengths), lengths))


@pytest.fixture
def prepared(name: str, request) -> Path:
    """The tiny prepared data, with parsed phrases for a model that reads them."""
    return request.getfixturevalue("tiny_prepared_phrases" if tiny_model(name).reads_phrases else "tiny_prepared")


def test_split_scoring_equals_the_models_own_similarity(name: str, prepared: Path) -> None:
    reader = SplitReader(prepared / "test.h5")
    model = warm_up(tiny_model(name, DataShape(reader.feat_dim, reader.regions, reader.vocab_size)))
    emb = encode_split(model, reader, batch_size=7, device="cpu")
    sims = score_matrix(model, emb, img_block=3, cap_block=11, device="cpu")
    with torch.no_grad():
        expected = model.similarity(emb.images, emb.captions, emb.lengths)
    assert sims.shape == (reader.n_images, reader.n_captions)
    assert torch.allclose(torch.from_numpy(sims), expected.float(), atol=1e-5)


def test_a_few_training_steps_lower_the_loss(name: str, prepared: Path) -> None:
    reader = SplitReader(prepared / "train.h5")
    model = tiny_model(name, DataShape(reader.feat_dim, reader.regions, reader.vocab_size)).train()
    objective = model.objective(ContrastiveLoss(margin=0.2, max_violation=False), reader, prepared / "vocab.json")
    batch = collate_pairs([PairDataset(reader)[j] for j in range(0, 80, 5)])  # 16 captions of 16 images
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    torch.manual_seed(0)
    losses = [float(optimisation_step(model, objective, optimizer, scaler, 2.0, batch)) for _ in range(12)]
    assert sum(losses[-3:]) < sum(losses[:3]), losses  # fitting one batch (seeded, so no flakiness)
    # None: not connected to the loss (a value of exactly 0 is legitimate, e.g. a bias before a softmax)
    unused = [key for key, param in model.named_parameters() if param.grad is None]
    assert not unused, f"parameters the objective never reaches: {unused}"
