"""The Python API, `hsc search` and `hsc embed` on a tiny prepared split and a random tiny checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hsc.api import gallery_path, load
from hsc.checkpoint import save_checkpoint
from hsc.data.store import SplitReader
from hsc.evaluation.scoring import inference
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc_app.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def tiny_checkpoint(path: Path, prepared: Path, name: str = "hsc") -> Path:
    reader = SplitReader(prepared / "test.h5")
    torch.manual_seed(0)
    spec = ModelSpec.resolve(name, DataShape(img_dim=reader.feat_dim, regions=reader.regions, vocab_size=reader.vocab_size),
                             {"embed_size": 16, "image": {"graph_blocks": 1}, "text": {"word_dim": 8, "attn_layers": 1},
                              "head": {"sim_dim": 8}, "joint": {"local_dim": 8}})
    save_checkpoint(path, build_model(spec), vocab_sha256=reader.vocab_sha256)
    return path


def test_readme_example_runs(tmp_path: Path, tiny_prepared: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    block = re.search(r"## Asking a trained model.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "synthetic").symlink_to(tiny_prepared)
    tiny_checkpoint(tmp_path / "data" / "checkpoints" / "best.pt", tiny_prepared)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "zebra-unicorn" in out and "(2, 2)" in out


def test_search_equals_scoring_every_image_and_the_gallery_is_cached(tmp_path: Path, tiny_prepared: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "best.pt", tiny_prepared)
    retriever = load(checkpoint, tiny_prepared)
    cache = gallery_path(checkpoint, tiny_prepared / "test.h5")
    assert cache.is_file()
    words, lengths = retriever.encode_texts(["a red car"])
    every = retriever.score(retriever.gallery.images, words, lengths)[:, 0]
    hits = retriever.search("a red car", k=4, shortlist=10_000)
    assert [hit.index for hit in hits] == list(np.argsort(-every, kind="stable")[:4])
    assert len(retriever.search("a red car", k=4, shortlist=10)) == 4  # two-stage: 10 candidates re-scored
    assert load(checkpoint, tiny_prepared).gallery.images.shape == retriever.gallery.images.shape  # from the cache
    save_checkpoint(checkpoint, build_model(retriever.model.spec), vocab_sha256=retriever.reader.vocab_sha256)
    assert gallery_path(checkpoint, tiny_prepared / "test.h5") != cache  # new weights: a new key


@pytest.mark.parametrize("name", ["hsc", "hje"])
def test_search_cli_text_and_image(tmp_path: Path, tiny_prepared: Path, name: str) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "best.pt", tiny_prepared, name)
    base = ["search", "--checkpoint", str(checkpoint), "--data", str(tiny_prepared), "--top", "3"]
    result = CliRunner().invoke(app, [*base, "a zorblax thing"])
    assert result.exit_code == 0, result.output
    assert "unknown words" in result.output and "zorblax" in result.output and "images for" in result.output
    result = CliRunner().invoke(app, [*base, "--image", "2"])
    assert result.exit_code == 0 and "captions for image 2" in result.output
    retriever = load(checkpoint, tiny_prepared)
    every = retriever.score(retriever.gallery.images[2:3], *_captions(retriever))[0]
    assert [hit.index for hit in retriever.search_image(2, k=3)] == list(np.argsort(-every, kind="stable")[:3])
    bad = CliRunner().invoke(app, [*base, "--image", "999"])
    assert bad.exit_code != 0 and "outside" in str(bad.exception)


@pytest.mark.parametrize("name", ["hsc", "hje"])
def test_embed_writes_vectors_with_ids(tmp_path: Path, tiny_prepared: Path, name: str) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "best.pt", tiny_prepared, name)
    out = tmp_path / "vectors.h5"
    result = CliRunner().invoke(app, ["embed", "--checkpoint", str(checkpoint), "--data", str(tiny_prepared),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    reader = SplitReader(tiny_prepared / "test.h5")
    with h5py.File(out) as h5:
        assert h5["image_vectors"].shape[0] == len(h5["image_index"]) == reader.n_images
        assert h5["caption_vectors"].shape[0] == reader.n_captions
        assert np.array_equal(h5["caption_image"][()], reader.caption_image)
        assert h5.attrs["vectors"] == ("pooled" if name == "hje" else "shortlist")
        vectors = h5["image_vectors"][()]
    retriever = load(checkpoint, tiny_prepared)
    assert np.allclose(vectors, retriever.image_vectors.numpy())
    assert not list(tmp_path.glob(".*.tmp"))


def _captions(retriever) -> tuple[torch.Tensor, torch.Tensor]:
    return retriever.gallery.captions, retriever.gallery.lengths


def test_ssamt_parses_free_text_into_phrases(tmp_path: Path, tiny_prepared_phrases: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "best.pt", tiny_prepared_phrases, "ssamt")
    retriever = load(checkpoint, tiny_prepared_phrases)
    words, lengths = retriever.encode_texts(["a red car on a small dog"])
    # the query's own parse: scored against the gallery, it ranks as the gallery's captions are ranked
    every = retriever.score(retriever.gallery.images, words, lengths)[:, 0]
    hits = retriever.search("a red car on a small dog", k=3, shortlist=10_000)
    assert [hit.index for hit in hits] == list(np.argsort(-every, kind="stable")[:3])
    with inference(retriever.model):
        unparsed = retriever.model.encode_captions(*_tokens(retriever, "a red car on a small dog"),
                                                   torch.zeros(1, 0, words.size(1), dtype=torch.bool))
        assert torch.equal(words, retriever.encode_texts(["a red car on a small dog"])[0])
    assert not torch.allclose(words, unparsed)  # the parse reached the phrase attention


def _tokens(retriever, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    from hsc.data.tokenizer import tokenize

    ids = torch.tensor([retriever.vocab.encode(tokenize(text))])
    return ids, torch.tensor([ids.size(1)])


def test_the_gallery_cache_leaves_the_train_output_unchanged_for_dvc(tmp_path: Path, tiny_prepared: Path) -> None:
    """The cache sits in data/checkpoints, the train stage's output: .dvcignore must hide it,
    or `dvc status` reports the stage changed and `dvc repro` retrains."""
    import pathspec  # DVC's own matcher for .dvcignore

    dvcignore = Path(__file__).resolve().parents[1] / ".dvcignore"
    spec = pathspec.PathSpec.from_lines("gitwildmatch", dvcignore.read_text(encoding="utf-8").splitlines())
    checkpoint = tiny_checkpoint(tmp_path / "data" / "checkpoints" / "best.pt", tiny_prepared)
    cache = gallery_path(checkpoint, tiny_prepared / "test.h5").relative_to(tmp_path)
    assert spec.match_file(cache.as_posix())
    assert not spec.match_file(checkpoint.relative_to(tmp_path).as_posix())
