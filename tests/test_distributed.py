"""Training and evaluation under torchrun (2 gloo processes on CPU) against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hsc.distributed import World
from hsc.training.distributed import batch_plan, share_sizes

REPO = Path(__file__).resolve().parents[1]
NO_DROPOUT = {"text": {"word_dim": 16, "dropout": 0.0}, "head": {"sim_dim": 16, "dropout": 0.0},
              "joint": {"local_dim": 16, "head_dropout": 0.0}}


def test_shares_cover_each_global_batch_in_order() -> None:
    order = list(range(100, 127))  # 27 items, batches of 13: 13, 13 and a last one smaller than the world
    shares = [batch_plan(order, 13, World(rank, 2)) for rank in range(2)]
    assert [len(s) for s in shares] == [3, 3]
    for index, (first, second) in enumerate(zip(*shares)):
        batch = order[index * 13:(index + 1) * 13]
        if len(batch) >= 2:
            assert first.indices + second.indices == batch and first.gather.sizes == (7, 6)
        else:  # fewer pairs than ranks: every rank computes the whole batch
            assert first.indices == second.indices == batch and not first.gather.split
    assert [s.indices for s in batch_plan(order, 13, World())] == [order[:13], order[13:26], order[26:]]
    assert share_sizes(5, 3) == [2, 2, 1]


GLOO = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                          reason="torch.distributed with gloo is unavailable")


def _run(args: list[str], cwd: Path, nproc: int = 1) -> None:
    """``python ARGS`` alone, or under torchrun with ``nproc`` gloo processes on this machine."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    done = subprocess.run([sys.executable, *launch, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@GLOO
@pytest.mark.parametrize("model", ["hsc", "hje"])
def test_two_processes_give_the_single_process_step(tmp_path, tiny_prepared, model) -> None:
    """Same global batch: the same loss, gradients and BatchNorm running statistics."""
    results = {}
    for nproc in (1, 2):
        _run([str(REPO / "tests" / "distributed_worker.py"), str(tiny_prepared), model, f"{nproc}.pt"], tmp_path, nproc)
        results[nproc] = torch.load(tmp_path / f"{nproc}.pt", weights_only=True)
    one, two = results[1], results[2]
    assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-6)
    # Float32 summation order differs (gathered blocks, sums over ranks): compare against the largest
    # gradient, as biases whose true gradient is 0 (before a BatchNorm or a softmax) hold only rounding.
    scale = max(float(g.abs().max()) for g in one["grads"].values())
    for name, grad in one["grads"].items():
        assert torch.allclose(two["grads"][name], grad, rtol=0, atol=1e-4 * scale), name
    for name, buffer in one["buffers"].items():
        assert torch.allclose(two["buffers"][name].float(), buffer.float(), rtol=1e-5, atol=1e-6), name


def _params(tmp: Path, params: dict, nproc: int) -> None:
    (tmp / "params.yaml").write_text(yaml.safe_dump({**params, "train": {**params["train"], "nproc_per_node": nproc}}))


@pytest.mark.slow
@GLOO
def test_two_processes_train_and_evaluate_like_one(tmp_path, tiny_prepared, tiny_params_dict) -> None:
    # Dropout off: its masks come from each rank's own stream. Batches of 11 over 300 captions give
    # unequal shares (6 + 5) and a last partial batch (2 + 1).
    params = {**tiny_params_dict, "model": {**tiny_params_dict["model"], **NO_DROPOUT},
              "train": {**tiny_params_dict["train"], "batch_size": 11}}
    history, evals = {}, {}
    for nproc in (1, 2):
        run = tmp_path / str(nproc)
        run.mkdir()
        _params(run, params, nproc)  # train.nproc_per_node=2: `hsc train` relaunches itself under torchrun
        _run(["-m", "hsc_app.cli", "train", "--params", "params.yaml", "--data", str(tiny_prepared), "--out", "ckpt",
              "--metrics", "curves"], run)
        history[nproc] = torch.load(run / "ckpt" / "last.pt", weights_only=True)["history"]
        assert json.loads((run / "curves" / "metrics.json").read_text())["epoch"] == 2  # rank 0 logged both epochs
        # Evaluation of the same checkpoint (the 1-process one) with nproc processes.
        _run(["-m", "hsc_app.cli", "evaluate", "--params", "params.yaml", "--checkpoint", str(tmp_path / "1" / "ckpt" / "best.pt"),
              "--data", str(tiny_prepared), "--out", "eval.json", "--plots", "recall"], run, nproc)
        evals[nproc] = json.loads((run / "eval.json").read_text())
    assert evals[2] == evals[1]
    assert [r["epoch"] for r in history[2]] == [1, 2]
    for a, b in zip(history[1], history[2]):
        # The step is the single-process one to float32 rounding (test above); over 2 epochs Adam carries
        # that to ~1e-5 of the loss. It also turns the rounding-only gradients of biases before a
        # BatchNorm into lr-sized steps, which move running means and so the eval scores of this
        # untrained 20-image model by ~1e-3: a few near-tied ranks flip (5 rsum points each).
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-4)
        assert b["dev/rsum"] == pytest.approx(a["dev/rsum"], abs=15)
