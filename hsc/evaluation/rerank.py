"""Two-stage evaluation: shortlist candidates with pooled vectors, re-rank only those with the head.

For each scope of a protocol (the whole split, or one fold: images [a, b) and their captions),
each image's top ``k`` captions and each caption's top ``k`` images by the dot product of
pair-independent vectors (``model.shortlist_vectors``) are shortlisted. The union of these
pairs is the scope's scored set: every pair in it is scored once by the head, image by image.

A query's candidates are every scored pair it belongs to, whichever direction shortlisted
it: a caption ranks its own top k images AND the images whose top k held that caption (and an
image likewise). Those pairs are scored anyway, so this costs no head evaluation; it rescues a
ground truth that one direction's vectors missed and the other found.

Ranks come from the existing rank code (:func:`~hsc.evaluation.ranks.query_ranks`) on one
(n, 5n) matrix per scope holding the head scores of the scored pairs; every other entry is
``FLOOR`` less than the scope's lowest head score. A ground truth outside its query's
candidates then scores the floor: every candidate outranks it and the tie rule (ties count
against the ground truth) puts it after its floor peers too, a miss at every reported R@K,
never rank 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from hsc.checkpoint import check_fits, load_model
from hsc.data.precomp import CAPTIONS_PER_IMAGE
from hsc.errors import HscError
from hsc.evaluation.protocols import Protocol, ProtocolResult
from hsc.evaluation.ranks import (curve_from_ranks, mean_curve, mean_metrics,
                                  metrics_from_ranks, query_ranks)
from hsc.evaluation.scoring import SplitEmbeddings, encode_split, inference
from hsc.progress import bar

FLOOR = 1.0  # how far below a scope's lowest head score the non-shortlisted entries sit
QUERY_BLOCK = 1024  # queries ranked against the gallery at once by the matrix product


def top_k(queries: torch.Tensor, gallery: torch.Tensor, k: int, index: str = "matmul") -> np.ndarray:
    """(Q, min(k, G)) gallery rows of the largest dot products with each query, best first.

    ``index="faiss"`` searches an exact inner-product index (``IndexFlatIP``) instead of the
    blocked matrix product; the optional extra ``hsc[faiss]`` provides it.
    """
    k = min(k, len(gallery))
    queries, gallery = queries.float().cpu(), gallery.float().cpu()
    if index == "faiss":
        try:
            import faiss
        except ImportError:
            raise HscError("evaluate.shortlist_index: faiss is not installed; pip install 'hsc[faiss]' "
                           "or set shortlist_index: matmul") from None
        flat = faiss.IndexFlatIP(gallery.shape[1])
        flat.add(np.ascontiguousarray(gallery.numpy()))
        return flat.search(np.ascontiguousarray(queries.numpy()), k)[1].astype(np.int64)
    gallery_t = gallery.t().contiguous()
    return np.concatenate([(queries[q:q + QUERY_BLOCK] @ gallery_t).topk(k, dim=1).indices.numpy()
                           for q in range(0, len(queries), QUERY_BLOCK)]) if len(queries) else np.empty((0, k), np.int64)


@dataclass(frozen=True)
class Scope:
    """Images [first_image, first_image + n_images) and their captions, ranked among themselves."""

    first_image: int
    n_images: int

    @property
    def images(self) -> slice:
        return slice(self.first_image, self.first_image + self.n_images)

    @property
    def captions(self) -> slice:
        return slice(CAPTIONS_PER_IMAGE * self.first_image, CAPTIONS_PER_IMAGE * (self.first_image + self.n_images))


@dataclass(frozen=True)
class Shortlist:
    """Candidates of a scope, in split-wide indices."""

    scope: Scope
    i2t: np.ndarray  # (n, k) captions of each image
    t2i: np.ndarray  # (5n, k) images of each caption

    def pair_keys(self, n_captions: int) -> np.ndarray:
        """Every candidate pair as ``image * n_captions + caption``, unique and sorted."""
        images = np.arange(self.scope.images.start, self.scope.images.stop)
        captions = np.arange(self.scope.captions.start, self.scope.captions.stop)
        return np.union1d(images[:, None] * n_captions + self.i2t, self.t2i * n_captions + captions[:, None])


def scopes_of(protocol: Protocol, n_images: int) -> list[Scope]:
    n = n_images // protocol.folds
    return [Scope(n * fold, n) for fold in range(protocol.folds)]


def shortlist(img_vecs: torch.Tensor, cap_vecs: torch.Tensor, scope: Scope, k: int, index: str) -> Shortlist:
    images, captions = img_vecs[scope.images], cap_vecs[scope.captions]
    return Shortlist(scope, top_k(images, captions, k, index) + scope.captions.start,
                     top_k(captions, images, k, index) + scope.images.start)


def score_pairs(model: Any, emb: SplitEmbeddings, keys: np.ndarray, *, cap_block: int,
                device: torch.device | str) -> np.ndarray:
    """Head scores of the pairs ``image * C + caption`` (sorted), each image against its captions."""
    n_captions = len(emb.captions)
    images, captions = keys // n_captions, keys % n_captions
    scores = np.empty(len(keys), dtype=np.float32)
    starts = np.flatnonzero(np.r_[True, images[1:] != images[:-1]]) if len(keys) else np.empty(0, np.int64)
    with inference(model), bar(unit="pairs") as progress:
        task = progress.add_task("re-rank pairs", total=len(keys))
        for start, stop in zip(starts, np.r_[starts[1:], len(keys)]):
            image = emb.images[images[start]:images[start] + 1].to(device)
            for c in range(start, stop, cap_block):
                chosen = torch.from_numpy(captions[c:min(stop, c + cap_block)])
                lengths = emb.lengths[chosen.to(emb.lengths.device)]
                words = emb.captions[chosen.to(emb.captions.device), :int(lengths.max())].to(device)
                scores[c:c + len(chosen)] = model.similarity(image, words, lengths.to(device))[0].float().cpu().numpy()
                progress.advance(task, len(chosen))
    return scores


def scope_matrix(candidates: Shortlist, keys: np.ndarray, scores: np.ndarray, n_captions: int) -> np.ndarray:
    """The scope's (n, 5n) scores: the head's on its scored pairs, the floor elsewhere (see the module docstring)."""
    scope = candidates.scope
    own = candidates.pair_keys(n_captions)
    head = scores[np.searchsorted(keys, own)]
    matrix = np.full((scope.n_images, CAPTIONS_PER_IMAGE * scope.n_images), head.min() - FLOOR, dtype=np.float32)
    matrix[own // n_captions - scope.images.start, own % n_captions - scope.captions.start] = head
    return matrix


def ground_truth_shares(lists: Sequence[Shortlist], n_captions: int) -> dict[str, float]:
    """Percent of image and of caption queries with a ground truth among their top k and among their candidates."""
    top_k_i2t, top_k_t2i, cand_i2t, cand_t2i = [], [], [], []
    for c in lists:
        images = np.arange(c.scope.images.start, c.scope.images.stop)
        captions = np.arange(c.scope.captions.start, c.scope.captions.stop)
        truths = captions.reshape(-1, CAPTIONS_PER_IMAGE)  # each image's own captions
        top_k_i2t.append((c.i2t // CAPTIONS_PER_IMAGE == images[:, None]).any(1))
        top_k_t2i.append((c.t2i == captions[:, None] // CAPTIONS_PER_IMAGE).any(1))
        scored = np.isin(images[:, None] * n_captions + truths, c.pair_keys(n_captions))  # (n, 5)
        cand_i2t.append(scored.any(1))
        cand_t2i.append(scored.ravel())

    def share(parts: list[np.ndarray]) -> float:
        return round(100.0 * float(np.concatenate(parts).mean()), 2)

    return {"gt_in_shortlist_i2t": share(cand_i2t), "gt_in_shortlist_t2i": share(cand_t2i),
            "gt_in_top_k_i2t": share(top_k_i2t), "gt_in_top_k_t2i": share(top_k_t2i)}


def two_stage_protocols(model: Any, emb: SplitEmbeddings, vectors: tuple[torch.Tensor, torch.Tensor],
                        protocols: Sequence[Protocol], k: int, *, index: str = "matmul", cap_block: int,
                        device: torch.device | str) -> list[ProtocolResult]:
    """Metrics of ``protocols`` (all on ``emb``'s split), shortlisting ``k`` per query and re-ranking the candidates.

    ``vectors`` are the split's (N, E') image and (C, E') caption shortlist vectors. Each result's
    ``extra`` holds k, the shares of ground truths among the queries' candidates (``gt_in_shortlist_*``)
    and among their own top k alone (``gt_in_top_k_*``), the pairs scored and seconds.
    """
    n_images, n_captions = len(emb.images), len(emb.captions)
    started = time.perf_counter()
    lists = {p: [shortlist(*vectors, scope, k, index) for scope in scopes_of(p, n_images)] for p in protocols}
    keys_of = {p: np.unique(np.concatenate([c.pair_keys(n_captions) for c in lists[p]])) for p in protocols}
    keys = np.unique(np.concatenate(list(keys_of.values())))
    scores = score_pairs(model, emb, keys, cap_block=cap_block, device=device)
    seconds = time.perf_counter() - started
    results = []
    for protocol in protocols:
        per_scope = [query_ranks(scope_matrix(c, keys, scores, n_captions), "re-ranked scores")
                     for c in lists[protocol]]
        if protocol.folds == 1:
            metrics, curve = metrics_from_ranks(per_scope[0]), curve_from_ranks(per_scope[0])
        else:
            metrics, curve = mean_metrics(per_scope), mean_curve(per_scope)
        extra = {"rerank_k": k, **ground_truth_shares(lists[protocol], n_captions),
                 "pairs_scored": int(len(keys_of[protocol])), "seconds": round(seconds, 2)}
        results.append(ProtocolResult(protocol, metrics, curve, extra))
    return results


def shortlist_vectors(model: Any, emb: SplitEmbeddings, *, batch: int,
                      device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's (N, E') image and (C, E') caption shortlist vectors, from its encodings."""
    images, captions = [], []
    step = max(1, batch // CAPTIONS_PER_IMAGE)  # C = 5N: image and caption batches end together
    with inference(model):
        for start in range(0, len(emb.images), step):
            lengths = emb.lengths[CAPTIONS_PER_IMAGE * start:CAPTIONS_PER_IMAGE * (start + step)]
            cap = emb.captions[CAPTIONS_PER_IMAGE * start:CAPTIONS_PER_IMAGE * (start + step)]
            if cap.dim() == 3:
                cap = cap[:, :int(lengths.max())]
            img_vec, cap_vec = model.shortlist_vectors(emb.images[start:start + step].to(device), cap.to(device),
                                                       lengths.to(device))
            images.append(img_vec.float().cpu())
            captions.append(cap_vec.float().cpu())
    return torch.cat(images), torch.cat(captions)


def evaluate_two_stage(checkpoints: Sequence[Path], readers: Mapping[str, Any], protocols: Sequence[Protocol],
                       settings: Any, device: torch.device) -> list[ProtocolResult] | None:
    """The evaluate stage's results with ``settings.rerank_k`` > 0; None for a pooled model (its scores are exact).

    Shortlist vectors come from ``settings.shortlist_checkpoint`` when set, else from the model itself.
    """
    if len(checkpoints) != 1:
        raise HscError(f"evaluate.rerank_k: re-ranking scores one checkpoint, got {len(checkpoints)}; "
                       "set rerank_k: 0 to ensemble")
    model, checkpoint = load_model(checkpoints[0], device)
    if model.granularity == "pooled":
        return None
    results = []
    for split, reader in readers.items():
        check_fits(checkpoints[0], checkpoint, reader)
        emb = encode_split(model, reader, batch_size=settings.encode_batch, device=device)
        results += two_stage_protocols(model, emb, split_vectors(model, emb, reader, settings, device),
                                       [p for p in protocols if p.split == split], settings.rerank_k,
                                       index=settings.shortlist_index, cap_block=settings.cap_block, device=device)
    return [next(r for r in results if r.protocol == p) for p in protocols]


def split_vectors(model: Any, emb: SplitEmbeddings, reader: Any, settings: Any,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's shortlist vectors: from ``settings.shortlist_checkpoint`` when set, else from ``model``'s encodings."""
    if not settings.shortlist_checkpoint:
        return shortlist_vectors(model, emb, batch=settings.encode_batch, device=device)
    path = Path(settings.shortlist_checkpoint)
    shortlister, stored = load_model(path, device)
    check_fits(path, stored, reader)
    own = encode_split(shortlister, reader, batch_size=settings.encode_batch, device=device)
    return shortlist_vectors(shortlister, own, batch=settings.encode_batch, device=device)
