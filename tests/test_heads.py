"""The batched SAF / SGR heads against the per-caption loop, and their padding handling."""

from __future__ import annotations

import pytest
import torch

from hsc.models.config import HeadConfig
from hsc.models.heads import HEADS, PairNodes, SimilarityEncoder
from hsc.models.layers import l2norm
from hsc.models.reference import loop_similarity

R, E, S, L = 6, 16, 8, 9
LENGTHS = [9, 3, 1, 6, 4, 9, 2]


def make_head(kind: str, seed: int = 0, dropout: float = 0.4) -> SimilarityEncoder:
    """A head with non-trivial BatchNorm statistics and affine terms, as after training."""
    torch.manual_seed(seed)
    head = SimilarityEncoder(E, R, HeadConfig(kind=kind, sim_dim=S, sgr_steps=3, dropout=dropout))
    for module in head.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.5, 0.5)
    return head


def inputs(n_images: int = 5, lengths: list[int] = LENGTHS, width: int = L, seed: int = 1):
    """Unit regions and unit words, exactly zero past each caption's length (as the encoders give)."""
    gen = torch.Generator().manual_seed(seed)
    img = l2norm(torch.randn(n_images, R, E, generator=gen))
    lengths_t = torch.tensor(lengths)
    cap = l2norm(torch.randn(len(lengths), width, E, generator=gen))
    cap = cap * (torch.arange(width) < lengths_t[:, None]).unsqueeze(2)
    return img, cap, lengths_t


@pytest.mark.parametrize("kind", sorted(HEADS))
@pytest.mark.parametrize("chunk_elements", [2 ** 25, 1, 5 * 2 * L * E])
@torch.no_grad()
def test_batched_head_equals_the_per_caption_loop(kind: str, chunk_elements: int) -> None:
    head = make_head(kind).eval()
    head.chunk_elements = chunk_elements
    img, cap, lengths = inputs()
    scores = head(img, cap, lengths)
    expected = loop_similarity(head, img, cap, lengths)
    assert scores.shape == (5, len(LENGTHS))
    assert (scores - expected).abs().max() < 1e-5
    assert scores.std() > 1e-4  # the comparison is not between constants


@pytest.mark.parametrize("kind", sorted(HEADS))
@torch.no_grad()
def test_eval_scores_ignore_what_lies_in_the_padding(kind: str) -> None:
    head = make_head(kind).eval()
    img, cap, lengths = inputs()
    noisy = cap + torch.randn(cap.shape) * (torch.arange(L) >= lengths[:, None]).unsqueeze(2)
    wider = torch.cat([cap, torch.randn(len(LENGTHS), 4, E)], dim=1)
    assert torch.equal(head(img, cap, lengths), head(img, noisy, lengths))
    assert torch.allclose(head(img, cap, lengths), head(img, wider, lengths), atol=1e-6)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_training_statistics_come_from_real_nodes_and_span_the_batch(kind: str) -> None:
    img, cap, lengths = inputs()
    wider = torch.cat([cap, torch.zeros(len(LENGTHS), 5, E)], dim=1)
    runs = []
    for tensor, chunk_elements in [(cap, 2 ** 25), (wider, 2 ** 25), (cap, 1)]:
        head = make_head(kind, dropout=0.0).train()
        head.chunk_elements = chunk_elements
        scores = head(img, tensor, lengths)
        runs.append((scores, [buf.clone() for name, buf in head.named_buffers() if "running" in name]))
    for scores, buffers in runs[1:]:
        assert torch.allclose(scores, runs[0][0], atol=1e-6)
        for got, want in zip(buffers, runs[0][1]):
            assert torch.allclose(got, want, atol=1e-6)


def test_saf_batch_norm_statistics_are_those_of_the_real_nodes() -> None:
    saf = make_head("saf", dropout=0.0).train().pool
    saf.bn.reset_running_stats()
    nodes = PairNodes(torch.randn(2, 3, S), torch.randn(2, 6, S), torch.tensor([0, 0, 1, 1, 1, 2]))
    saf(nodes, torch.tensor([2, 3, 1]))
    logits = saf.attn_sim_w(torch.cat([nodes.glo, nodes.loc], dim=1)).flatten().detach()
    assert torch.allclose(saf.bn.running_mean, 0.1 * logits.mean(), atol=1e-6)
    assert torch.allclose(saf.bn.running_var, 0.9 + 0.1 * logits.var(), atol=1e-6)


def test_padded_nodes_put_the_global_node_first_and_mask_the_rest() -> None:
    glo, loc = torch.randn(2, 3, S), torch.randn(2, 6, S)
    nodes, mask = PairNodes(glo, loc, torch.tensor([0, 0, 1, 1, 1, 2])).padded(torch.tensor([2, 3, 1]))
    assert nodes.shape == (2, 3, 4, S)
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True], [True, True, False, False]]
    assert torch.equal(nodes[:, :, 0], glo)
    assert torch.equal(nodes[:, 1, 1:], loc[:, 2:5])
    assert torch.equal(nodes[:, 2, 1], loc[:, 5])
    assert torch.equal(nodes[:, 0, 3], torch.zeros(2, S))


def test_training_scores_backpropagate_to_both_inputs() -> None:
    head = make_head("saf").train()
    img, cap, lengths = inputs()
    img.requires_grad_(True)
    cap.requires_grad_(True)
    head(img, cap, lengths).sum().backward()
    assert img.grad.abs().sum() > 0
    real = torch.arange(L) < lengths[:, None]
    assert cap.grad[real].abs().sum() > 0
    assert torch.equal(cap.grad[~real], torch.zeros_like(cap.grad[~real]))
