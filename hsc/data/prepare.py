"""The prepare stage's work: SCAN-layout raw files -> vocab.json + one HDF5 file per split."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hsc.atomic import atomic_directory
from hsc.data import precomp
from hsc.data.config import PrepareParams
from hsc.data.phrases import load_parser, parse_captions, parser_name
from hsc.data.precomp import SplitIds
from hsc.data.store import write_split
from hsc.data.tokenizer import tokenize_all, tokenizer_name
from hsc.data.vocab import Vocabulary
from hsc.hashing import sha256_files
from hsc.progress import track


@dataclass(frozen=True)
class SplitSummary:
    split: str
    images: int
    captions: int
    unknown_rate: float


def prepare_dataset(raw: Path, out: Path, dataset: str, settings: PrepareParams) -> tuple[list[SplitSummary], int]:
    """Do the stage's work; returns per-split figures and the vocabulary size."""
    splits = [precomp.open_split(raw, name) for name in precomp.find_splits(raw)]
    precomp.check_same_feature_dims(splits)
    building = settings.vocab == "build"
    vocab = None if building else Vocabulary.load(Path(settings.vocab))  # a bad file fails before the long work
    nlp = load_parser() if settings.phrases else None  # a missing parser fails before the long work too
    tables = {split.name: tokenize_all(track(split.captions(), f"tokenising {split.name}",
                                             total=split.n_captions, unit="cap"))
              for split in splits}
    if vocab is None:
        vocab = Vocabulary.from_counts(tables["train"].counts() + tables["dev"].counts(), settings.min_count)
    vocab_source = f"build (min_count {settings.min_count})" if building else settings.vocab
    digests = sha256_files([path for split in splits for path in (split.features_path, split.captions_path)],
                           "hashing raw files")

    summaries = []
    with atomic_directory(out) as staging:
        for split in splits:
            captions = vocab.encode_table(tables[split.name])
            if split.name == "dev" and settings.dev_images is not None:
                # as SCAN's loader: the captions of the first dev_images images (and the rows they use)
                captions = captions.head(int(np.searchsorted(split.image_of_caption(), settings.dev_images)))
            caption_image = split.caption_image(captions.n_captions)
            n_images = int(caption_image.max()) + 1
            ids = split.ids
            phrase_attrs, phrases = {}, None
            if nlp is not None:
                texts = itertools.islice(split.captions(), captions.n_captions)
                phrases = parse_captions(nlp, track(texts, f"parsing {split.name}", total=captions.n_captions, unit="cap"))
                phrase_attrs = {"phrase_parser": parser_name(nlp)}
            write_split(staging / f"{split.name}.h5", split, n_images, captions, caption_image, {
                "dataset": dataset,
                "split": split.name,
                "tokenizer": tokenizer_name(),
                "vocab_sha256": vocab.sha256,
                "vocab_size": len(vocab),
                "vocab_source": vocab_source,
                "source_sha256": json.dumps({path.name: digests[path.name]
                                             for path in (split.features_path, split.captions_path)}, sort_keys=True),
                "source_images": split.n_rows,
                "captions_per_image": split.captions_per_image,
                **phrase_attrs,
            }, feature_dtype=settings.feature_dtype,
                ids=SplitIds(ids.image_ids[:n_images], ids.caption_ids[:captions.n_captions], ids.source),
                phrases=phrases)
            summaries.append(SplitSummary(split.name, n_images, captions.n_captions, captions.unknown_rate))
        vocab.save(staging / "vocab.json")
    return summaries, len(vocab)
