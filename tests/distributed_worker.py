"""One training step of a tiny model, run alone or as one rank under torchrun; rank 0 saves the result.

Usage: python tests/distributed_worker.py PREPARED_DIR MODEL_NAME OUT.pt (tests/test_distributed.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from hsc.data.batches import PairDataset, collate_pairs
from hsc.data.store import SplitReader
from hsc.distributed import start, stop
from hsc.loss import ContrastiveLoss
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc.training.distributed import average_gradients, batch_plan, pad_tokens, sync_batchnorm, synced
from hsc_app.params import Params

MODEL = {"embed_size": 32, "text": {"word_dim": 16, "dropout": 0.0}, "head": {"sim_dim": 16, "dropout": 0.0},
         "joint": {"local_dim": 16, "head_dropout": 0.0}}


def main(data: Path, name: str, out: Path) -> None:
    world, _ = start("cpu", "device")
    torch.manual_seed(0)
    reader = SplitReader(data / "train.h5")
    shape = DataShape(img_dim=reader.feat_dim, regions=reader.regions, vocab_size=reader.vocab_size)
    model = build_model(ModelSpec.resolve(name, shape, Params.model_validate({"model": {"name": name, **MODEL}}).model.model_dump()))
    if world.active:
        sync_batchnorm(model)
    objective = model.objective(ContrastiveLoss(0.2, max_violation=True), reader, data / "vocab.json")
    share = batch_plan(list(range(40, 51)), 11, world)[0]  # 11 pairs: shares of 6 and 5
    batch = pad_tokens(collate_pairs([PairDataset(reader)[i] for i in share.indices]), share.gather)
    with synced(share.gather):
        loss = objective(model, batch, share.gather)
    loss.backward()
    average_gradients(model)
    if world.main:
        torch.save({"loss": loss.detach(), "grads": {k: p.grad for k, p in model.named_parameters()},
                    "buffers": dict(model.named_buffers())}, out)
    stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
