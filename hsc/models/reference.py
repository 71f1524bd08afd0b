"""A plain per-caption loop over the similarity head's maths, the way the published code runs it.

Each caption is taken alone at its own length (no padding, no masks) against every image.
It shares only parameters with :class:`~hsc.models.heads.SimilarityEncoder`; the tests and
the benchmark compare the batched head against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hsc.models.heads import SimilarityEncoder

EPS = 1e-8


def _l2(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / (torch.sqrt((x * x).sum(dim=dim, keepdim=True)) + EPS)


def _linear(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return x @ layer.weight.t() + layer.bias


def _batch_norm(bn: torch.nn.BatchNorm1d, x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Eval-mode BatchNorm with running statistics, channels along ``channel_dim``."""
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x - bn.running_mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)


def image_global(head: SimilarityEncoder, img: torch.Tensor) -> torch.Tensor:
    """(Bi, R, E) -> (Bi, E) attention-pooled image vectors (eval mode: no dropout)."""
    branch = head.v_global_w
    local = torch.tanh(_batch_norm(branch.embedding_local[1], _linear(branch.embedding_local[0], img), 1))
    mean = img.mean(dim=1)
    pooled = torch.tanh(_batch_norm(branch.embedding_global[1], _linear(branch.embedding_global[0], mean), 1))
    logits = _linear(branch.embedding_common[0], local * pooled[:, None, :])[..., 0]
    weights = torch.softmax(logits, dim=1)
    return _l2((weights[..., None] * img).sum(dim=1))


def caption_global(head: SimilarityEncoder, words: torch.Tensor) -> torch.Tensor:
    """(n, E) one caption's real words -> (E,) its attention-pooled vector."""
    branch = head.t_global_w
    local = torch.tanh(_linear(branch.embedding_local[0], words))
    pooled = torch.tanh(_linear(branch.embedding_global[0], words.mean(dim=0)))
    weights = torch.softmax(_linear(branch.embedding_common[0], local * pooled)[:, 0], dim=0)
    return _l2((weights[:, None] * words).sum(dim=0))


def caption_nodes(head: SimilarityEncoder, img: torch.Tensor, img_glo: torch.Tensor,
                  words: torch.Tensor) -> torch.Tensor:
    """(Bi, n + 1, S) similarity nodes of one caption's n words against every image."""
    cap_glo = caption_global(head, words)
    glo = _l2(_linear(head.sim_tranglo_w, (img_glo - cap_glo) ** 2))  # (Bi, S)
    scores = F.leaky_relu(torch.einsum("ire,we->iwr", img, words), 0.1)  # (Bi, n, R)
    scores = scores / (torch.sqrt((scores ** 2).sum(dim=1, keepdim=True)) + EPS)  # over the words
    attn = torch.softmax(head.attn_lambda * scores, dim=2)  # over the regions
    attended = _l2(torch.einsum("iwr,ire->iwe", attn, img))
    loc = _l2(_linear(head.sim_tranloc_w, (attended - words[None]) ** 2))  # (Bi, n, S)
    return torch.cat([glo[:, None, :], loc], dim=1)


def saf_pool(head: SimilarityEncoder, nodes: torch.Tensor) -> torch.Tensor:
    """(Bi, N, S) -> (Bi, S) attention-filtered node summary."""
    saf = head.cal_sim_base_atten
    gate = torch.sigmoid(_batch_norm(saf.bn, _linear(saf.attn_sim_w, nodes), 2))[..., 0]  # (Bi, N)
    gate = gate / (gate.abs().sum(dim=1, keepdim=True) + EPS)
    return _l2((gate[..., None] * nodes).sum(dim=1))


def sgr_pool(head: SimilarityEncoder, nodes: torch.Tensor) -> torch.Tensor:
    """(Bi, N, S) -> (Bi, S) global node after the graph reasoning steps."""
    for step in head.SGR_module:
        edges = torch.softmax(_linear(step.graph_query_w, nodes) @ _linear(step.graph_key_w, nodes).transpose(1, 2),
                              dim=2)
        nodes = torch.relu(_linear(step.sim_graph_w, edges @ nodes))
    return nodes[:, 0]


@torch.no_grad()
def loop_similarity(head: SimilarityEncoder, img: torch.Tensor, cap: torch.Tensor,
                    lengths: torch.Tensor) -> torch.Tensor:
    """(Bi, Bc) eval-mode scores, one caption at a time at its own length."""
    img_glo = image_global(head, img)
    pool = saf_pool if head.head == "saf" else sgr_pool
    columns = []
    for caption, length in zip(cap, lengths.tolist()):
        nodes = caption_nodes(head, img, img_glo, caption[:length])
        columns.append(torch.sigmoid(_linear(head.sim_eval_w, pool(head, nodes)))[:, 0])
    return torch.stack(columns, dim=1)
