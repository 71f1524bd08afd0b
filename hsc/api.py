"""A small Python API for notebooks: load a checkpoint with a prepared split, encode, score, search.

The split's encodings (the *gallery*) are computed once and cached beside the checkpoint as
``<checkpoint>.gallery-<split>-<key>.pt``, the key hashing the checkpoint's and the split's
sha256, so a retrained model or re-prepared data never reads a stale gallery. A search
shortlists ``shortlist`` candidates by the model's pair-independent vectors and scores only
those with the model (every candidate when the gallery is no larger). Example: README.md,
"Asking a trained model" (tests/test_api.py runs it).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from hsc.atomic import atomic_path
from hsc.checkpoint import check_fits, load_model
from hsc.data.batches import collate_captions
from hsc.data.phrase_units import CaptionUnits, membership
from hsc.data.store import SplitReader
from hsc.data.vocab import UNK_ID, Vocabulary
from hsc.evaluation.protocols import scored_image_rows
from hsc.evaluation.rerank import shortlist_vectors
from hsc.evaluation.scoring import SplitEmbeddings, encode_split, inference
from hsc.hashing import sha256_file

SHORTLIST = 128  # candidates re-scored by the model per query
ENCODE_BATCH = 128


@dataclass(frozen=True)
class Hit:
    """One result: an image (``index`` a row of the split, ``texts`` its captions) or a caption."""

    index: int
    score: float
    texts: list[str]


class Retriever:
    """A model and the encoded gallery of one prepared split (build it with :func:`load`)."""

    def __init__(self, model: torch.nn.Module, reader: SplitReader, vocab: Vocabulary, gallery: dict[str, torch.Tensor],
                 device: torch.device) -> None:
        self.model, self.reader, self.vocab, self.device = model, reader, vocab, device
        self.gallery = SplitEmbeddings(gallery["images"], gallery["captions"], gallery["lengths"], model.granularity)
        self.image_rows: np.ndarray = gallery["image_rows"].numpy()
        self.image_vectors, self.caption_vectors = gallery["image_vectors"], gallery["caption_vectors"]

    def caption_text(self, caption: int) -> str:
        """Caption ``caption`` of the split as words (without ``<start>`` and ``<end>``)."""
        return " ".join(self.vocab.word_of(int(i)) for i in self.reader.caption(caption)[1:-1])

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` that the vocabulary lacks (the model reads them as ``<unk>``)."""
        from hsc.data.tokenizer import tokenize  # nltk: only when text is typed

        return [word for word in tokenize(text) if self.vocab.id_of(word) == UNK_ID]

    def encode_texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encodings of free texts (tokenised as prepare does, parsed into phrases as prepare does
        when the model reads them) and their lengths."""
        from hsc.data.tokenizer import tokenize

        tokens, lengths = collate_captions([torch.tensor(self.vocab.encode(tokenize(text))) for text in texts])
        phrases = query_phrases(texts, lengths, tokens.size(1)).to(self.device) if self.model.reads_phrases else None
        with inference(self.model):
            return (self.model.encode_captions(tokens.to(self.device), lengths.to(self.device), phrases),
                    lengths.to(self.device))

    def encode_images(self, rows: Sequence[int]) -> torch.Tensor:
        """Encodings of the split's images at ``rows``."""
        feats = torch.from_numpy(self.reader.features(np.asarray(rows)))
        with inference(self.model):
            return self.model.encode_images(feats.to(self.device))

    def score(self, images: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        """(images, captions) scores of encoded images and encoded captions."""
        with inference(self.model):
            return self.model.similarity(images, captions, lengths).float().cpu().numpy()

    def search(self, text: str, k: int = 5, shortlist: int = SHORTLIST) -> list[Hit]:
        """The ``k`` images of the split that best match ``text``, best first."""
        words, lengths = self.encode_texts([text])
        query = self._vectors(self.gallery.images[:1], words, lengths)[1][0]
        candidates = _top(self.image_vectors @ query, shortlist)
        scores = self.score(self.gallery.images[candidates].to(self.device), words, lengths)[:, 0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(int(self.image_rows[candidates[i]]), float(scores[i]), self._captions_of(int(candidates[i])))
                for i in order]

    def search_image(self, image: int, k: int = 5, shortlist: int = SHORTLIST) -> list[Hit]:
        """The ``k`` captions of the split that best match image ``image`` (a gallery index), best first."""
        if not 0 <= image < len(self.gallery.images):
            raise IndexError(f"image {image} is outside 0..{len(self.gallery.images) - 1}")
        encoded = self.gallery.images[image:image + 1].to(self.device)
        candidates = _top(self.caption_vectors @ self.image_vectors[image], shortlist)
        lengths = self.gallery.lengths[candidates]
        words = self.gallery.captions[candidates]
        words = (words[:, :int(lengths.max())] if words.dim() == 3 else words).to(self.device)
        scores = self.score(encoded, words, lengths.to(self.device))[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(int(candidates[i]), float(scores[i]), [self.caption_text(int(candidates[i]))]) for i in order]

    def save_vectors(self, path: str | Path, **attrs: str) -> None:
        """Write image_vectors (N, E) with image_index, and caption_vectors (C, E) with caption_index
        and caption_image, to HDF5 (atomically); ``attrs`` are stored beside ``model`` and ``vectors``.

        image_index is each vector's row of the split's features, caption_index its caption, and
        caption_image the image row of each caption. The vectors are a pooled model's own, or a
        cross-attention model's shortlist vectors.
        """
        import h5py

        with atomic_path(Path(path)) as tmp, h5py.File(tmp, "w") as h5:
            h5["image_vectors"] = self.image_vectors.numpy()
            h5["image_index"] = self.image_rows
            h5["caption_vectors"] = self.caption_vectors.numpy()
            h5["caption_index"] = np.arange(len(self.caption_vectors))
            h5["caption_image"] = np.asarray(self.reader.caption_image)
            h5.attrs["model"] = self.model.spec.name
            h5.attrs["vectors"] = "pooled" if self.model.granularity == "pooled" else "shortlist"
            h5.attrs.update(attrs)

    def _vectors(self, images: torch.Tensor, captions: torch.Tensor,
                 lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with inference(self.model):
            img, cap = self.model.shortlist_vectors(images.to(self.device), captions, lengths)
        return img.float().cpu(), cap.float().cpu()

    def _captions_of(self, image: int) -> list[str]:
        return [self.caption_text(int(j)) for j in np.flatnonzero(self.reader.caption_image == self.image_rows[image])]


def query_phrases(texts: Sequence[str], lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, P, width) phrase memberships of free texts, parsed by ``prepare.phrases``'s parser."""
    from hsc.data.phrases import parse_captions

    units = CaptionUnits(parse_captions(_query_parser(), texts), lengths.numpy(), "query")
    return membership([units[b] for b in range(len(texts))], lengths, width)


@functools.lru_cache(maxsize=1)
def _query_parser() -> Any:
    """The phrase parser, loaded once per process (a second or so)."""
    from hsc.data.phrases import load_parser  # spaCy: only when a model reads phrases

    return load_parser("free-text queries to a model that reads phrases (ssamt)")


def _top(scores: torch.Tensor, n: int) -> torch.Tensor:
    return scores.topk(min(n, len(scores))).indices


def gallery_path(checkpoint: Path, split_path: Path) -> Path:
    """Where a gallery is cached: beside the checkpoint, keyed by the checkpoint's and the split's sha256."""
    key = hashlib.sha256(f"{sha256_file(checkpoint)}:{sha256_file(split_path)}".encode()).hexdigest()[:16]
    return checkpoint.with_name(f"{checkpoint.name}.gallery-{split_path.stem}-{key}.pt")


def load(checkpoint: str | Path, data_dir: str | Path, split: str = "test", device: str = "cpu") -> Retriever:
    """A :class:`Retriever` of ``checkpoint`` over split ``split`` of the prepared directory ``data_dir``."""
    checkpoint, data_dir, device = Path(checkpoint), Path(data_dir), torch.device(device)
    model, stored = load_model(checkpoint, device)
    reader = SplitReader(data_dir / f"{split}.h5")
    check_fits(checkpoint, stored, reader)
    cache = gallery_path(checkpoint, reader.path)
    if cache.is_file():
        gallery = torch.load(cache, map_location=device, weights_only=True)
    else:
        emb = encode_split(model, reader, batch_size=ENCODE_BATCH, device=device)
        image_vectors, caption_vectors = shortlist_vectors(model, emb, batch=ENCODE_BATCH, device=device)
        rows = scored_image_rows(reader.n_images, np.asarray(reader.caption_image), str(reader.path))
        gallery = {"images": emb.images, "captions": emb.captions, "lengths": emb.lengths,
                   "image_vectors": image_vectors, "caption_vectors": caption_vectors,
                   "image_rows": torch.from_numpy(np.asarray(rows, dtype=np.int64))}
        with atomic_path(cache) as tmp:
            torch.save(gallery, tmp)
    return Retriever(model, reader, Vocabulary.load(data_dir / "vocab.json"), gallery, device)
