"""Data-parallel training with single-process semantics for the global batch.

Every global batch of ``train.batch_size`` pairs (the single-process order: same permutation,
same batches) is split into contiguous shares, one per rank. A rank encodes only its share;
the objective calls a :class:`Gather` on what it needs globally (caption encodings, its score
rows, ids), so every rank computes the *global* batch's loss, hardest negatives over the whole
batch. Why that gives the single-process gradient exactly: each rank's loss is the same L, so
the backward of the gather (a sum over ranks) hands every share W x its dL/d(share), and
:func:`average_gradients` divides the summed parameter gradients by W again.

BatchNorm in training mode normalises with statistics of the whole global batch
(:func:`sync_batchnorm`), so the forward is the single-process one too. Dropout masks are
drawn per rank from each rank's own stream: with dropout the runs agree only in distribution.

A global batch with fewer pairs than ranks (at most the last one of an epoch) is computed whole
by every rank instead; averaging W identical gradients keeps it exact.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import nn

from hsc.data.batches import PairBatch
from hsc.distributed import World


class Gather:
    """Concatenates every rank's share of a tensor along dim 0, with autograd (identity when not split)."""

    def __init__(self, sizes: Optional[Sequence[int]] = None) -> None:
        self.sizes = tuple(sizes) if sizes is not None else None

    @property
    def split(self) -> bool:
        return self.sizes is not None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.sizes is None:
            return x
        longest = max(self.sizes)  # all_gather needs equal shapes: pad dim 0, then trim each share
        padded = F.pad(x, [0, 0] * (x.dim() - 1) + [0, longest - len(x)]) if len(x) < longest else x
        parts = dist_nn.all_gather(padded) if x.requires_grad else _all_gather(padded)
        return torch.cat([part[:size] for part, size in zip(parts, self.sizes)])


LOCAL = Gather()


def _all_gather(x: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return parts


@dataclass(frozen=True)
class Share:
    """This rank's part of one global batch: the dataset indices it loads and how to gather."""

    indices: list[int]
    gather: Gather


def share_sizes(n: int, ranks: int) -> list[int]:
    """Contiguous share sizes of ``n`` items over ``ranks`` (the first ``n % ranks`` get one more)."""
    return [n // ranks + (rank < n % ranks) for rank in range(ranks)]


def batch_plan(order: Sequence[int], batch_size: int, world: World) -> list[Share]:
    """Each global batch of ``order`` (consecutive ``batch_size`` items, the last partial) as this rank's share."""
    plan = []
    for start in range(0, len(order), batch_size):
        batch = list(order[start:start + batch_size])
        if not world.active or len(batch) < world.size:
            plan.append(Share(batch, LOCAL))
            continue
        sizes = share_sizes(len(batch), world.size)
        offset = sum(sizes[:world.rank])
        plan.append(Share(batch[offset:offset + sizes[world.rank]], Gather(sizes)))
    return plan


def pad_tokens(batch: PairBatch, gather: Gather) -> PairBatch:
    """Pad the share's tokens to the global batch's longest caption, so encodings gather with one shape
    (and a text encoder that depends on the padded length sees the single-process width)."""
    if not gather.split:
        return batch
    width = torch.tensor(batch.tokens.size(1), device=batch.tokens.device)
    dist.all_reduce(width, op=dist.ReduceOp.MAX)
    extra = int(width) - batch.tokens.size(1)
    phrases = None if batch.phrases is None else F.pad(batch.phrases, [0, extra])  # padding is in no phrase
    return batch._replace(tokens=F.pad(batch.tokens, [0, extra]), phrases=phrases)


def average_gradients(model: nn.Module) -> None:
    """Mean of every parameter's gradient over the ranks, in one all-reduce (nothing in one process)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_parameters(model: nn.Module) -> None:
    """Every rank starts from rank 0's weights and buffers."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


_SYNC = {"on": False}


@contextlib.contextmanager
def synced(gather: Gather) -> Iterator[None]:
    """Within the block, BatchNorm layers converted by :func:`sync_batchnorm` use global statistics
    when ``gather`` splits the batch."""
    previous = _SYNC["on"]
    _SYNC["on"] = gather.split
    try:
        yield
    finally:
        _SYNC["on"] = previous


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics span every rank's share of the global batch.

    torch's SyncBatchNorm needs a GPU; this one works on any backend. Mean and variance come from
    two autograd all-reduces (sums, then squared deviations), like the single-process two-pass ones.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _SYNC["on"]):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor(float(x.numel() // x.size(1)), device=x.device)
        dist.all_reduce(count)
        mean = dist_nn.all_reduce(x.sum(dim=dims)) / count
        centred = x - mean.view(shape)
        var = dist_nn.all_reduce(centred.square().sum(dim=dims)) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1), self.momentum)
        return centred / (var.view(shape) + self.eps).sqrt() * self.weight.view(shape) + self.bias.view(shape)


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """Make every BatchNorm1d of ``model`` a :class:`GlobalBatchNorm1d` in place (same parameters,
    buffers and state dict keys)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm1d:
            module.__class__ = GlobalBatchNorm1d
    return model
