"""The phrase-level loss: swapped phrases from the batch, a hinge added to every family's objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_families import TINY

from hsc.data.batches import PairDataset, collate_pairs
from hsc.data.store import SplitReader
from hsc.errors import HscError
from hsc.loss import ContrastiveLoss
from hsc.models.config import VARIANTS, DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc.training.phrases import PhraseBank, PhraseObjective
from hsc.training.step import optimisation_step
from hsc_app.params import Params
from hsc_app.training.loop import Trainer
from conftest import TINY_PARAMS


def batch_of(reader: SplitReader, n: int = 12):
    return collate_pairs([PairDataset(reader)[j] for j in range(0, 5 * n, 5)])


def test_every_swap_differs_from_its_phrase_and_triples_get_reversed(tiny_prepared_phrases: Path) -> None:
    reader = SplitReader(tiny_prepared_phrases / "train.h5")
    bank = PhraseBank(reader)
    torch.manual_seed(0)
    reversed_seen = 0
    for _ in range(5):
        rows, positives, negatives = bank.pairs(list(range(40)))
        assert rows and len(rows) == len(positives) == len(negatives)
        assert all(p != q and p[0] == q[0] and p[-1] == q[-1] for p, q in zip(positives, negatives))
        reversed_seen += sum(sorted(p) == sorted(q) for p, q in zip(positives, negatives))
    assert reversed_seen > 0  # a reversed triple (or an entity's own words reordered) uses the same ids


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_phrase_loss_adds_to_every_familys_objective_and_trains(tiny_prepared_phrases: Path, name: str) -> None:
    reader = SplitReader(tiny_prepared_phrases / "train.h5")
    torch.manual_seed(0)
    shape = DataShape(img_dim=reader.feat_dim, regions=reader.regions, vocab_size=reader.vocab_size)
    model = build_model(ModelSpec.resolve(name, shape, TINY))
    base = model.objective(ContrastiveLoss(), reader, tiny_prepared_phrases / "vocab.json")
    objective = PhraseObjective(base, PhraseBank(reader), weight=1.0, margin=0.2)
    batch = batch_of(reader)
    model.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        assert objective(model, batch) > base(model, batch)  # untrained: the swapped phrases are not ranked below
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    losses = [optimisation_step(model, objective, optimizer, scaler, 2.0, batch).item() for _ in range(15)]
    assert losses[-1] < losses[0]


def test_phrase_loss_without_phrase_spans_names_prepare_phrases(tiny_prepared: Path, tmp_path: Path) -> None:
    params = Params.model_validate({**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "phrase_loss": 1.0}})
    with pytest.raises(HscError, match=r"train\.h5: has no phrase spans.*prepare\.phrases: true"):
        Trainer(params, tiny_prepared, tmp_path / "ckpt", tmp_path / "metrics")


def test_trainer_trains_with_the_phrase_loss(tiny_prepared_phrases: Path, tmp_path: Path) -> None:
    params = Params.model_validate({**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "phrase_loss": 0.5}})
    trainer = Trainer(params, tiny_prepared_phrases, tmp_path / "ckpt", tmp_path / "metrics")
    assert isinstance(trainer.objective, PhraseObjective)
    assert trainer.run().best_path.exists()
