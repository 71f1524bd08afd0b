"""The cross-attention family's pair scorer: similarity nodes, pooled by a head from ``HEADS``.

Each pair gets similarity nodes: one global (image vector vs caption vector) and one per real
word (the word vs its SCAN text-to-image attended context). A head turns a pair's nodes into
one (S,) vector: SAF filters and pools them, SGR reasons over them. Words are handled
*packed*: the real words of a block of captions are concatenated, so padding costs nothing
and every large product is one batched GEMM.

A head is a module built from :class:`~hsc.models.config.HeadConfig` with ``forward(nodes,
lengths) -> (Bi, Bc, S)`` over packed nodes and ``reference(nodes) -> (Bi, S)``, the same maths
in plain tensor operations over one caption's unpadded nodes. Adding a head is its class and
one entry in ``HEADS``; the tests run every entry.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hsc.errors import HscError
from hsc.models import plain_ops
from hsc.models.config import HeadConfig
from hsc.models.fused import squared_difference_linear
from hsc.models.layers import EPS, init_head_modules_, l2norm
from hsc.models.text import word_mask


class PairNodes(NamedTuple):
    """Similarity nodes of Bi images x Bc captions, the word nodes packed (no padding)."""

    glo: torch.Tensor  # (Bi, Bc, S): one global node per pair
    loc: torch.Tensor  # (Bi, W, S): one node per real word of every caption, caption after caption
    word_caption: torch.Tensor  # (W,) int64: the caption (0..Bc-1) of each packed word

    def padded(self, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Bi, Bc, N, S) nodes [global; words; zero padding] and their (Bc, N) mask, N = 1 + longest."""
        mask = word_mask(lengths + 1, int(lengths.max()) + 1)
        word_slots = mask.clone()
        word_slots[:, 0] = False
        nodes = self.glo.new_zeros(*self.glo.shape[:2], mask.size(1), self.glo.size(2))
        nodes[:, :, 0] = self.glo
        nodes[:, word_slots] = self.loc
        return nodes, mask


class VisualGlobal(nn.Module):
    """Attention-pooled image vector (SGRAF's ``v_global_w``): (B, R, E) -> (B, E)."""

    def __init__(self, embed_size: int, regions: int, dropout: float) -> None:
        super().__init__()
        self.embedding_local = nn.Sequential(nn.Linear(embed_size, embed_size), nn.BatchNorm1d(regions),
                                             nn.Tanh(), nn.Dropout(dropout))
        self.embedding_global = nn.Sequential(nn.Linear(embed_size, embed_size), nn.BatchNorm1d(embed_size),
                                              nn.Tanh(), nn.Dropout(dropout))
        self.embedding_common = nn.Sequential(nn.Linear(embed_size, 1))

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        local = self.embedding_local(regions)
        pooled = self.embedding_global(regions.mean(dim=1))
        weights = self.embedding_common(local * pooled.unsqueeze(1)).squeeze(2).softmax(dim=1)
        return l2norm((weights.unsqueeze(2) * regions).sum(dim=1))


class TextGlobal(nn.Module):
    """Attention-pooled caption vector over its real words (SGRAF's ``t_global_w``): (B, L, E) -> (B, E)."""

    def __init__(self, embed_size: int, dropout: float) -> None:
        super().__init__()
        self.embedding_local = nn.Sequential(nn.Linear(embed_size, embed_size), nn.Tanh(), nn.Dropout(dropout))
        self.embedding_global = nn.Sequential(nn.Linear(embed_size, embed_size), nn.Tanh(), nn.Dropout(dropout))
        self.embedding_common = nn.Sequential(nn.Linear(embed_size, 1))

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = word_mask(lengths, words.size(1))
        words = words * mask.unsqueeze(2)
        mean = words.sum(dim=1) / lengths.to(words.dtype).unsqueeze(1)
        local = self.embedding_local(words)
        pooled = self.embedding_global(mean)
        logits = self.embedding_common(local * pooled.unsqueeze(1)).squeeze(2)
        weights = logits.masked_fill(~mask, float("-inf")).softmax(dim=1)
        return l2norm((weights.unsqueeze(2) * words).sum(dim=1))


class AttentionFiltration(nn.Module):
    """SAF: weight each pair's nodes by L1-normalised sigmoid(BN(Linear(node))) and pool them to (S,)."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.attn_sim_w = nn.Linear(config.sim_dim, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, nodes: PairNodes, lengths: torch.Tensor) -> torch.Tensor:
        """(Bi, Bc, S) pooled vectors from packed nodes, so BatchNorm sees only real ones."""
        glo_logits = self.attn_sim_w(nodes.glo).squeeze(-1)  # (Bi, Bc)
        loc_logits = self.attn_sim_w(nodes.loc).squeeze(-1)  # (Bi, W)
        normed = self.bn(torch.cat([glo_logits.flatten(), loc_logits.flatten()]).unsqueeze(1)).squeeze(1)
        glo_gate = torch.sigmoid(normed[:glo_logits.numel()]).view_as(glo_logits)
        loc_gate = torch.sigmoid(normed[glo_logits.numel():]).view_as(loc_logits)
        total = glo_gate.index_add(1, nodes.word_caption, loc_gate)
        pooled = (nodes.glo * glo_gate.unsqueeze(2)).index_add(1, nodes.word_caption,
                                                               nodes.loc * loc_gate.unsqueeze(2))
        return l2norm(pooled / (total.unsqueeze(2) + EPS))

    def reference(self, nodes: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(plain_ops.batch_norm(self.bn, plain_ops.linear(self.attn_sim_w, nodes), 2))[..., 0]
        gate = gate / (gate.abs().sum(dim=1, keepdim=True) + EPS)
        return plain_ops.l2((gate[..., None] * nodes).sum(dim=1))


class GraphReasoning(nn.Module):
    """One SGR step: softmax(q . k^T) over the real nodes, then ReLU(Linear(edges . nodes))."""

    def __init__(self, sim_dim: int) -> None:
        super().__init__()
        self.graph_query_w = nn.Linear(sim_dim, sim_dim)
        self.graph_key_w = nn.Linear(sim_dim, sim_dim)
        self.sim_graph_w = nn.Linear(sim_dim, sim_dim)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """Update the first ``queries`` nodes (all when None) from every real node."""
        query = self.graph_query_w(nodes if queries is None else nodes[..., :queries, :])
        key = self.graph_key_w(nodes)
        edges = (query @ key.transpose(-1, -2)).masked_fill(~mask.unsqueeze(-2), float("-inf")).softmax(dim=-1)
        return torch.relu(self.sim_graph_w(edges @ nodes))


class GraphReasoningHead(nn.Module):
    """SGR: ``sgr_steps`` graph reasoning steps over a pair's nodes; the global node is its vector."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.steps = nn.ModuleList(GraphReasoning(config.sim_dim) for _ in range(config.sgr_steps))

    def forward(self, nodes: PairNodes, lengths: torch.Tensor) -> torch.Tensor:
        padded, mask = nodes.padded(lengths)
        for index, step in enumerate(self.steps):
            last = index == len(self.steps) - 1  # only the global node is read afterwards
            padded = step(padded, mask, queries=1 if last else None)
        return padded[:, :, 0]

    def reference(self, nodes: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            query = plain_ops.linear(step.graph_query_w, nodes)
            key = plain_ops.linear(step.graph_key_w, nodes)
            nodes = torch.relu(plain_ops.linear(step.sim_graph_w, torch.softmax(query @ key.transpose(1, 2), dim=2) @ nodes))
        return nodes[:, 0]


HEADS: dict[str, type[nn.Module]] = {"saf": AttentionFiltration, "sgr": GraphReasoningHead}


class SimilarityEncoder(nn.Module):
    """(Bi, R, E) regions x (Bc, L, E) words -> (Bi, Bc) scores in [0, 1] (LHSC's ``sim_enc``)."""

    def __init__(self, embed_size: int, regions: int, config: HeadConfig) -> None:
        super().__init__()
        if config.kind not in HEADS:
            raise HscError(f"model.head.kind: unknown head {config.kind!r} (known: {', '.join(HEADS)})")
        sim_dim, dropout = config.sim_dim, config.dropout
        self.attn_lambda = config.attn_lambda
        # Captions per block keep Bi x block captions x longest x E floats under this: 2**23 (32 MB)
        # measured fastest on 2 CPU cores; None picks that on a CPU and 2**27 on a GPU, where
        # larger kernels pay.
        self.chunk_elements: int | None = None
        self.v_global_w = VisualGlobal(embed_size, regions, dropout)
        self.t_global_w = TextGlobal(embed_size, dropout)
        self.sim_tranloc_w = nn.Linear(embed_size, sim_dim)
        self.sim_tranglo_w = nn.Linear(embed_size, sim_dim)
        self.sim_eval_w = nn.Linear(sim_dim, 1)
        self.pool = HEADS[config.kind](config)
        init_head_modules_(self)

    def forward(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        img_glo = self.v_global_w(img)
        cap_glo = self.t_global_w(cap, lengths)
        gram = img @ img.transpose(1, 2)  # (Bi, R, R): attended-context norms without a pass over E
        blocks = self.caption_blocks(img.size(0), lengths, cap.size(2))
        # Without autograd, every block's (Bi, words, E) differences reuse one buffer: a fresh one per
        # block costs more in page faults than the arithmetic that fills it.
        workspace = None
        if not torch.is_grad_enabled():
            workspace = img.new_empty(img.size(0) * img.size(2) * max(int(lengths[a:b].sum()) for a, b in blocks))

        def block_nodes(start: int, stop: int) -> PairNodes:
            return self.pair_nodes(img, gram, img_glo, cap[start:stop], cap_glo[start:stop], lengths[start:stop],
                                   workspace)

        if not self.training:  # eval BatchNorm works node by node: score each block, then free it
            return torch.cat([self.score(block_nodes(start, stop), lengths[start:stop]) for start, stop in blocks],
                             dim=1)
        # Training BatchNorm statistics span every pair of the batch, so all blocks are scored at once.
        parts = [block_nodes(start, stop) for start, stop in blocks]
        nodes = PairNodes(torch.cat([part.glo for part in parts], dim=1),
                          torch.cat([part.loc for part in parts], dim=1),
                          torch.cat([part.word_caption + start for part, (start, _) in zip(parts, blocks)]))
        return self.score(nodes, lengths)

    def caption_blocks(self, n_images: int, lengths: torch.Tensor, embed_size: int) -> list[tuple[int, int]]:
        """[start, stop) caption ranges that keep n_images x block captions x longest x E under the budget."""
        per_caption = n_images * int(lengths.max()) * embed_size
        budget = self.chunk_elements or (2 ** 23 if lengths.device.type == "cpu" else 2 ** 27)
        size = max(1, budget // per_caption)
        return [(start, min(start + size, len(lengths))) for start in range(0, len(lengths), size)]

    def pair_nodes(self, img: torch.Tensor, gram: torch.Tensor, img_glo: torch.Tensor, cap: torch.Tensor,
                   cap_glo: torch.Tensor, lengths: torch.Tensor, workspace: torch.Tensor | None = None) -> PairNodes:
        """The nodes of every image x caption pair of one block of captions."""
        diff_glo = img_glo.unsqueeze(1) - cap_glo.unsqueeze(0)
        glo = l2norm(self.sim_tranglo_w(self._square(diff_glo)))
        mask = word_mask(lengths, int(lengths.max()))
        position = mask.flatten().nonzero().squeeze(1)
        words = cap[:, :mask.size(1)].reshape(-1, cap.size(2))[position]  # (W, E)
        word_caption = position // mask.size(1)
        attn = self.word_attention(img, words, word_caption, len(lengths))  # (Bi, W, R)
        # ||attn . regions|| from the Gram matrix: an (R, R) product instead of a pass over E.
        norm = ((attn @ gram) * attn).sum(dim=2, keepdim=True).clamp_min(0).sqrt()
        attn = attn / (norm + EPS)
        if workspace is None:  # autograd: keep no (Bi, W, E) tensor for the backward, rebuild it there
            loc = squared_difference_linear(attn, img, words, self.sim_tranloc_w.weight, self.sim_tranloc_w.bias)
        else:
            loc = self.sim_tranloc_w(self._squared_differences(attn, img, words, workspace))
        return PairNodes(glo, l2norm(loc), word_caption)

    @staticmethod
    def _squared_differences(attn: torch.Tensor, img: torch.Tensor, words: torch.Tensor,
                             workspace: torch.Tensor) -> torch.Tensor:
        """(Bi, W, E) squared differences (attn . regions - word)^2, computed in ``workspace``."""
        diff = workspace[:attn.size(0) * attn.size(1) * img.size(2)].view(attn.size(0), attn.size(1), img.size(2))
        return torch.bmm(attn, img, out=diff).sub_(words).square_()

    @staticmethod
    def _square(x: torch.Tensor) -> torch.Tensor:
        """x ** 2, in place when no gradient needs x (saves a pass over a large tensor)."""
        return x.square() if torch.is_grad_enabled() and x.requires_grad else x.square_()

    def word_attention(self, img: torch.Tensor, words: torch.Tensor, word_caption: torch.Tensor,
                       n_captions: int) -> torch.Tensor:
        """SCAN text-to-image attention weights (Bi, W, R) of every packed word over every image's regions."""
        n_images, n_regions, embed_size = img.shape
        # float32 from here: under AMP, fp16 sums of squares underflow and EPS rounds to 0.
        scores = F.leaky_relu(img.reshape(-1, embed_size) @ words.t(), 0.1).view(n_images, n_regions, -1).float()
        # L2 over each caption's own words: per-caption sums of squares, gathered back per word.
        sums = scores.new_zeros(n_images, n_regions, n_captions).index_add_(2, word_caption, scores.square())
        scores = scores / (sums.sqrt() + EPS)[:, :, word_caption]
        return (scores * self.attn_lambda).softmax(dim=1).transpose(1, 2)

    def score(self, nodes: PairNodes, lengths: torch.Tensor) -> torch.Tensor:
        """(Bi, Bc) scores from the pairs' nodes through the head."""
        return torch.sigmoid(self.sim_eval_w(self.pool(nodes, lengths))).squeeze(-1)
