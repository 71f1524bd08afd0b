"""Encoding and block-wise scoring with a tiny stand-in model and an in-memory split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hsc.data.batches import collate_captions
from hsc.errors import HscError
from hsc.evaluation import scoring
from hsc.evaluation.ranks import rank_metrics
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model


class TinyModel(nn.Module):
    """RetrievalModel's scoring interface, token-level; dropout makes a missing eval() visible."""

    granularity = "token"

    def __init__(self, feat_dim: int = 8, vocab: int = 30, embed: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.image = nn.Linear(feat_dim, embed)
        self.words = nn.Embedding(vocab, embed)
        self.dropout = nn.Dropout(0.5)

    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.dropout(self.image(feats)), dim=-1)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor, phrases: torch.Tensor | None = None) -> torch.Tensor:
        mask = torch.arange(tokens.shape[1]) < lengths[:, None]
        return self.words(tokens) * mask[..., None]

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return img.mean(1) @ (cap.sum(1) / lengths[:, None]).T

    def caption_batch(self, requested: int) -> int:
        return requested


class MemoryReader:
    """The parts of SplitReader that scoring uses."""

    def __init__(self, n_images: int, seed: int = 0, per_caption_rows: bool = False) -> None:
        rng = np.random.default_rng(seed)
        self.path = "memory/test.h5"
        self.phrases = None  # prepared without prepare.phrases
        self.n_captions = 5 * n_images
        self.captions = [rng.integers(1, 30, size=rng.integers(3, 9)) for _ in range(self.n_captions)]
        feats = rng.standard_normal((n_images, 4, 8)).astype(np.float32)
        if per_caption_rows:
            feats = np.repeat(feats, 5, axis=0)
            self.caption_image = np.arange(self.n_captions)
        else:
            self.caption_image = np.arange(self.n_captions) // 5
        self.feats = feats
        self.n_images = len(feats)
        self.read_sizes: list[int] = []

    def features(self, indices: np.ndarray) -> np.ndarray:
        self.read_sizes.append(len(indices))
        return self.feats[indices]

    def caption(self, j: int) -> np.ndarray:
        return self.captions[j].astype(np.int64)


def brute_force_sims(model: TinyModel, reader: MemoryReader) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        rows = np.arange(0, reader.n_images, 5) if reader.n_images == reader.n_captions else np.arange(reader.n_images)
        images = model.encode_images(torch.from_numpy(reader.feats[rows]))
        out = np.zeros((len(rows), reader.n_captions), dtype=np.float32)
        for j in range(reader.n_captions):
            tokens = torch.from_numpy(reader.caption(j))[None]
            caption = model.encode_captions(tokens, torch.tensor([tokens.shape[1]]))
            out[:, j] = model.similarity(images, caption, torch.tensor([tokens.shape[1]]))[:, 0].numpy()
    return out


@pytest.mark.parametrize("img_block, cap_block", [(1, 1), (3, 7), (64, 256)])
def test_score_matrix_matches_pairwise_scores(img_block: int, cap_block: int) -> None:
    model, reader = TinyModel(), MemoryReader(n_images=6)
    emb = scoring.encode_split(model, reader, batch_size=4, device="cpu")
    assert emb.images.shape == (6, 4, 6)
    assert emb.captions.shape == (30, max(len(c) for c in reader.captions), 6)
    sims = scoring.score_matrix(model, emb, img_block=img_block, cap_block=cap_block, device="cpu")
    assert sims.dtype == np.float32 and sims.shape == (6, 30)
    np.testing.assert_allclose(sims, brute_force_sims(model, reader), rtol=1e-5, atol=1e-6)


def test_encoding_reads_features_in_batches_and_pads_with_zeros() -> None:
    model, reader = TinyModel(), MemoryReader(n_images=7)
    emb = scoring.encode_split(model, reader, batch_size=3, device="cpu")
    assert reader.read_sizes == [3, 3, 1]
    for j, caption in enumerate(reader.captions):
        assert emb.lengths[j] == len(caption)
        assert torch.all(emb.captions[j, len(caption):] == 0)


def test_one_row_per_caption_scores_every_fifth_row() -> None:
    model = TinyModel()
    reader = MemoryReader(n_images=4, per_caption_rows=True)
    sims, metrics = scoring.evaluate_split(model, reader, device="cpu", batch_size=5, img_block=2, cap_block=6)
    assert sims.shape == (4, 20)
    np.testing.assert_allclose(sims, brute_force_sims(model, reader), rtol=1e-5, atol=1e-6)
    assert metrics == rank_metrics(sims)


def test_validate_restores_training_mode_and_is_deterministic() -> None:
    model, reader = TinyModel(), MemoryReader(n_images=5)
    model.train()
    first = scoring.validate(model, reader, device="cpu", batch_size=2, img_block=2, cap_block=3)
    assert model.training
    second = scoring.validate(model, reader, device="cpu", batch_size=4, img_block=5, cap_block=25)
    assert first == second
    assert set(first) >= {"rsum", "i2t_r1", "t2i_meanr"}


def test_an_image_without_captions_is_a_user_error() -> None:
    reader = MemoryReader(n_images=3)
    reader.n_captions = 10
    reader.caption_image = np.array([0] * 5 + [2] * 5)
    with pytest.raises(HscError, match="memory/test.h5: image row 1 has no caption"):
        scoring.encode_split(TinyModel(), reader, batch_size=4, device="cpu")


def test_validation_ranks_by_the_split_mapping() -> None:
    reader = MemoryReader(n_images=3)
    reader.n_captions = 14  # 5, 5 and 4 captions
    reader.caption_image = reader.caption_image[:14]
    sims, metrics = scoring.evaluate_split(TinyModel(), reader, device="cpu", batch_size=4, img_block=2, cap_block=4)
    assert sims.shape == (3, 14)
    assert metrics == rank_metrics(sims, caption_image=reader.caption_image)


def faithful_model_and_reader() -> tuple[torch.nn.Module, MemoryReader]:
    """A model whose caption embeddings depend on their batch's padding, and 250 captions of which
    only the 111th is long: batches of 100 and of 128 pad captions 0-99 differently."""
    torch.manual_seed(0)
    model = build_model(ModelSpec.resolve("hsc", DataShape(img_dim=8, regions=4, vocab_size=30), {
        "embed_size": 8, "image": {"graph_blocks": 1, "graph_heads": 2},
        "text": {"word_dim": 8, "attn_layers": 1, "attn_padding": "faithful"}, "head": {"sim_dim": 8}}))
    reader = MemoryReader(n_images=50)
    reader.captions[110] = np.arange(1, 21)
    return model, reader


@torch.no_grad()
def captions_in_batches_of(model: torch.nn.Module, reader: MemoryReader, size: int) -> torch.Tensor:
    """The reference: the split's captions encoded ``size`` at a time, in file order."""
    model.eval()
    captions = [torch.from_numpy(reader.caption(j)) for j in range(reader.n_captions)]
    out = torch.zeros(len(captions), max(len(c) for c in captions), 8)
    for start in range(0, len(captions), size):
        embs = model.encode_captions(*collate_captions(captions[start:start + size]))
        out[start:start + len(embs), :embs.shape[1]] = embs
    return out


@pytest.mark.parametrize("encode_batch", [1, 7, 128, 1000])
def test_faithful_padding_encodes_captions_in_lhscs_batches_of_100(encode_batch: int) -> None:
    model, reader = faithful_model_and_reader()
    emb = scoring.encode_split(model, reader, batch_size=encode_batch, device="cpu")
    lhsc = captions_in_batches_of(model, reader, 100)
    assert torch.equal(emb.captions, lhsc)
    # Batches of 128 (the presets' encode_batch) would give other embeddings: the check can fail.
    assert (captions_in_batches_of(model, reader, 128) - lhsc).abs().max() > 1e-4
    assert reader.read_sizes[0] == min(encode_batch, 50)  # images keep encode_batch


@pytest.mark.parametrize("padding, layers, expected", [("faithful", 1, 100), ("masked", 1, 128),
                                                      ("faithful", 0, 128)])
def test_only_batch_dependent_captions_take_lhscs_batch(padding: str, layers: int, expected: int) -> None:
    spec = ModelSpec.resolve("hsc", DataShape(img_dim=8, regions=4, vocab_size=30), {
        "embed_size": 8, "text": {"word_dim": 8, "attn_layers": layers, "attn_padding": padding}, "head": {"sim_dim": 8}})
    assert build_model(spec).caption_batch(128) == expected
