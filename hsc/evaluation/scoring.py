"""Encode a split once, then score every image x caption pair block by block.

Also the validation entry point of the training loop: :func:`validate` takes a built model
and a split reader and returns the rank metrics, leaving the model's train/eval mode as it was,
or raises :class:`ScoresCollapsed` when every score is (nearly) the same value.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from hsc.data.batches import collate_captions
from hsc.data.phrase_units import membership, split_units
from hsc.evaluation.distributed import gather_rows, my_block_starts
from hsc.evaluation.protocols import scored_image_rows, scored_relevance
from hsc.errors import HscError
from hsc.evaluation.ranks import rank_metrics
from hsc.progress import bar

# Scores of pooled models are computed this many at a time (64 MB of float32): large enough
# for a fast GEMM, small enough to keep memory flat.
POOLED_BLOCK_ELEMENTS = 1 << 24

# A score matrix is collapsed when max - min <= COLLAPSE_RTOL x max |score| (<= so an all-zero
# matrix counts): float32 scores a few ulps apart are one value plus rounding noise.
COLLAPSE_RTOL = 1e-6


class ScoresCollapsed(HscError):
    """A validation split scored (nearly) one value for every pair: the model has collapsed."""


@dataclass
class SplitEmbeddings:
    """A split's encoded images and captions (on the device they were encoded on)."""

    images: torch.Tensor  # token-level (N, R, E); pooled (N, E)
    captions: torch.Tensor  # token-level (C, L_max, E), zero past each caption's length; pooled (C, E)
    lengths: torch.Tensor  # (C,) int64
    granularity: str = "token"


def reader_name(reader: Any) -> str:
    """How error messages name a split: its file when the reader knows it."""
    return str(getattr(reader, "path", "split"))


@contextlib.contextmanager
def inference(model: torch.nn.Module) -> Iterator[None]:
    """eval() and no_grad for the block, then the model's previous mode back (it may be mid-training)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def encode_split(model: Any, reader: Any, *, batch_size: int, device: torch.device | str) -> SplitEmbeddings:
    """Encode the split's scored images (see ``scored_image_rows``) and all its captions.

    Captions go in batches of ``model.caption_batch(batch_size)``, in file order, with their
    parsed phrases when the split has them (``prepare.phrases``).
    """
    device = torch.device(device)
    rows = scored_image_rows(reader.n_images, np.asarray(reader.caption_image), reader_name(reader))
    # Token ids are small, so read them all to size the output; features are read per batch.
    captions = [torch.from_numpy(reader.caption(j)) for j in range(reader.n_captions)]
    lengths = torch.tensor([len(c) for c in captions], dtype=torch.int64)
    units = split_units(reader)
    image_parts = []
    caption_embs: torch.Tensor | None = None
    with inference(model), bar(unit="items") as progress:
        image_task = progress.add_task("encode images", total=len(rows))
        for start in range(0, len(rows), batch_size):
            feats = torch.from_numpy(np.asarray(reader.features(rows[start:start + batch_size]), dtype=np.float32))
            image_parts.append(model.encode_images(feats.to(device)))
            progress.advance(image_task, len(feats))
        caption_task = progress.add_task("encode captions", total=len(captions))
        caption_batch = model.caption_batch(batch_size)
        for start in range(0, len(captions), caption_batch):
            tokens, batch_lengths = collate_captions(captions[start:start + caption_batch])
            phrases = None if units is None else membership(
                [units[j] for j in range(start, start + len(tokens))], batch_lengths, tokens.size(1)).to(device)
            embs = model.encode_captions(tokens.to(device), batch_lengths.to(device), phrases)
            if caption_embs is None:  # token-level: (C, longest, E); pooled: (C, E)
                size = (len(captions), int(lengths.max()), embs.shape[-1]) if embs.dim() == 3 else (len(captions), embs.shape[-1])
                caption_embs = embs.new_zeros(size)
            caption_embs[start:start + len(embs), :embs.shape[1]] = embs
            progress.advance(caption_task, len(embs))
    return SplitEmbeddings(images=torch.cat(image_parts), captions=caption_embs, lengths=lengths.to(device),
                           granularity=model.granularity)


def score_matrix(model: Any, emb: SplitEmbeddings, *, img_block: int, cap_block: int,
                 device: torch.device | str) -> np.ndarray:
    """All (N, C) similarities, ``img_block`` x ``cap_block`` pairs at a time, as float32.

    Pooled embeddings are scored by blocked matrix products instead (:func:`pooled_score_matrix`).
    Under torchrun each rank scores its share of the image blocks (:mod:`hsc.evaluation.distributed`).
    """
    device = torch.device(device)
    if emb.granularity == "pooled":
        return pooled_score_matrix(emb.images, emb.captions, device=device)
    n_images, n_captions = len(emb.images), len(emb.captions)
    sims = np.zeros((n_images, n_captions), dtype=np.float32)
    starts = my_block_starts(n_images, img_block)
    with inference(model), bar(unit="pairs") as progress:
        task = progress.add_task("score pairs", total=sum(min(img_block, n_images - i) for i in starts) * n_captions)
        for i in starts:
            images = emb.images[i:i + img_block].to(device)
            for c in range(0, n_captions, cap_block):
                lengths = emb.lengths[c:c + cap_block]
                # Trim the block to its own longest caption: padding costs work but adds nothing.
                captions = emb.captions[c:c + cap_block, :int(lengths.max())].to(device)
                block = model.similarity(images, captions, lengths.to(device))
                sims[i:i + len(images), c:c + len(captions)] = block.float().cpu().numpy()
                progress.advance(task, block.numel())
    return gather_rows(sims)


def pooled_score_matrix(images: torch.Tensor, captions: torch.Tensor, *, device: torch.device | str,
                        block_elements: int = POOLED_BLOCK_ELEMENTS) -> np.ndarray:
    """(N, E) x (C, E) -> (N, C) dot products as float32, a block of image rows against every caption at a time."""
    device = torch.device(device)
    n_images, n_captions = len(images), len(captions)
    sims = np.zeros((n_images, n_captions), dtype=np.float32)
    captions_t = captions.to(device).float().t().contiguous()
    rows = max(1, block_elements // max(1, n_captions))
    starts = my_block_starts(n_images, rows)
    with bar(unit="pairs") as progress:
        task = progress.add_task("score pairs", total=sum(min(rows, n_images - i) for i in starts) * n_captions)
        for i in starts:
            block = images[i:i + rows].to(device).float() @ captions_t
            sims[i:i + len(block)] = block.cpu().numpy()
            progress.advance(task, block.numel())
    return gather_rows(sims)


def evaluate_split(model: Any, reader: Any, *, device: torch.device | str, batch_size: int,
                   img_block: int, cap_block: int) -> tuple[np.ndarray, dict[str, float]]:
    """Encode and score a split; its (N, C) score matrix and rank metrics."""
    emb = encode_split(model, reader, batch_size=batch_size, device=device)
    sims = score_matrix(model, emb, img_block=img_block, cap_block=cap_block, device=device)
    relevance = scored_relevance(reader.n_images, np.asarray(reader.caption_image))
    return sims, rank_metrics(sims, f"{reader_name(reader)} scores", relevance)


def validate(model: Any, reader: Any, *, device: torch.device | str, batch_size: int,
             img_block: int, cap_block: int) -> dict[str, float]:
    """Rank metrics of an already-built model on a split (the trainer's dev validation).

    Raises :class:`ScoresCollapsed` for a collapsed score matrix (see ``COLLAPSE_RTOL``).
    """
    sims, metrics = evaluate_split(model, reader, device=device, batch_size=batch_size,
                                   img_block=img_block, cap_block=cap_block)
    low, high = float(sims.min()), float(sims.max())
    if high - low <= COLLAPSE_RTOL * max(abs(low), abs(high)):
        raise ScoresCollapsed(f"{reader_name(reader)}: every score is {high:.6g} (spread {high - low:.3g})")
    return metrics
