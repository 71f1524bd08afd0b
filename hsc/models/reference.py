"""A plain per-caption loop over the similarity head's maths, the way the published code runs it.

Each caption is taken alone at its own length (no padding, no masks) against every image.
It shares only parameters with :class:`~hsc.models.heads.SimilarityEncoder` (the head's own
``reference`` pools the nodes); the tests and the benchmark compare the batched head against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hsc.models.heads import SimilarityEncoder
from hsc.models.plain_ops import EPS, batch_norm, l2, linear


def image_global(head: SimilarityEncoder, img: torch.Tensor) -> torch.Tensor:
    """(Bi, R, E) -> (Bi, E) attention-pooled image vectors (eval mode: no dropout)."""
    branch = head.v_global_w
    local = torch.tanh(batch_norm(branch.embedding_local[1], linear(branch.embedding_local[0], img), 1))
    mean = img.mean(dim=1)
    pooled = torch.tanh(batch_norm(branch.embedding_global[1], linear(branch.embedding_global[0], mean), 1))
    logits = linear(branch.embedding_common[0], local * pooled[:, None, :])[..., 0]
    weights = torch.softmax(logits, dim=1)
    return l2((weights[..., None] * img).sum(dim=1))


def caption_global(head: SimilarityEncoder, words: torch.Tensor) -> torch.Tensor:
    """(n, E) one caption's real words -> (E,) its attention-pooled vector."""
    branch = head.t_global_w
    local = torch.tanh(linear(branch.embedding_local[0], words))
    pooled = torch.tanh(linear(branch.embedding_global[0], words.mean(dim=0)))
    weights = torch.softmax(linear(branch.embedding_common[0], local * pooled)[:, 0], dim=0)
    return l2((weights[:, None] * words).sum(dim=0))


def caption_nodes(head: SimilarityEncoder, img: torch.Tensor, img_glo: torch.Tensor,
                  words: torch.Tensor) -> torch.Tensor:
    """(Bi, n + 1, S) similarity nodes of one caption's n words against every image."""
    cap_glo = caption_global(head, words)
    glo = l2(linear(head.sim_tranglo_w, (img_glo - cap_glo) ** 2))  # (Bi, S)
    scores = F.leaky_relu(torch.einsum("ire,we->iwr", img, words), 0.1)  # (Bi, n, R)
    scores = scores / (torch.sqrt((scores ** 2).sum(dim=1, keepdim=True)) + EPS)  # over the words
    attn = torch.softmax(head.attn_lambda * scores, dim=2)  # over the regions
    attended = l2(torch.einsum("iwr,ire->iwe", attn, img))
    loc = l2(linear(head.sim_tranloc_w, (attended - words[None]) ** 2))  # (Bi, n, S)
    return torch.cat([glo[:, None, :], loc], dim=1)


@torch.no_grad()
def loop_similarity(head: SimilarityEncoder, img: torch.Tensor, cap: torch.Tensor,
                    lengths: torch.Tensor) -> torch.Tensor:
    """(Bi, Bc) eval-mode scores, one caption at a time at its own length."""
    img_glo = image_global(head, img)
    columns = []
    for caption, length in zip(cap, lengths.tolist()):
        nodes = caption_nodes(head, img, img_glo, caption[:length])
        columns.append(torch.sigmoid(linear(head.sim_eval_w, head.pool.reference(nodes)))[:, 0])
    return torch.stack(columns, dim=1)
