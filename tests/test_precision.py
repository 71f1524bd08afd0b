"""train.amp: the autocast precision per device, and a bfloat16 training step on a CPU."""

from __future__ import annotations

import math

import pytest
import torch

from hsc.data.batches import PairBatch
from hsc.loss import ContrastiveLoss, RankingObjective
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc.training import precision
from hsc.training.precision import autocast_dtype, grad_scaler
from hsc.training.step import optimisation_step

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("amp, device, expected", [
    ("auto", CPU, None), (False, CPU, None), ("auto", CUDA, torch.float16), (True, CUDA, torch.float16),
    (False, CUDA, None), (True, CPU, torch.bfloat16)])
def test_autocast_dtype_per_setting_and_device(amp, device, expected, monkeypatch, capsys) -> None:
    monkeypatch.setattr(precision, "native_cpu_bfloat16", lambda: True)
    assert autocast_dtype(amp, device) == expected
    assert capsys.readouterr().out == ""


def test_only_float16_scales_the_loss() -> None:
    assert not grad_scaler(torch.bfloat16, CPU).is_enabled()
    assert not grad_scaler(None, CPU).is_enabled()


def test_bfloat16_on_a_cpu_without_it_in_hardware_runs_with_a_warning(monkeypatch, capsys) -> None:
    monkeypatch.setattr(precision, "native_cpu_bfloat16", lambda: False)
    assert autocast_dtype(True, CPU) == torch.bfloat16
    out = capsys.readouterr().out
    assert out.startswith("warning: train.amp=true") and out.count("\n") == 1


def one_step(autocast: torch.dtype | None) -> tuple[float, torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    shape = DataShape(img_dim=12, regions=5, vocab_size=30)
    model = build_model(ModelSpec.resolve("hsc", shape, {"embed_size": 16, "text": {"word_dim": 8},
                                                        "head": {"sim_dim": 8}})).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([7, 2, 4, 1, 6, 3])
    tokens = torch.randint(4, shape.vocab_size, (len(lengths), 7), generator=gen)
    tokens[torch.arange(7) >= lengths[:, None]] = 0
    ids = torch.arange(len(lengths))
    batch = PairBatch(torch.randn(len(lengths), shape.regions, shape.img_dim, generator=gen), tokens, lengths, ids, ids)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    objective = RankingObjective(ContrastiveLoss(margin=0.2, max_violation=False))
    loss = optimisation_step(model, objective, optimizer, grad_scaler(autocast, CPU), 2.0, batch, autocast=autocast)
    return float(loss), model, before


def test_a_bfloat16_autocast_step_on_cpu_trains_float32_parameters() -> None:
    loss, model, before = one_step(torch.bfloat16)
    float32_loss, _, _ = one_step(None)
    assert math.isfinite(loss)
    assert loss != float32_loss and loss == pytest.approx(float32_loss, rel=0.05)  # ran in bfloat16, close to fp32
    for key, param in model.named_parameters():
        assert param.dtype == torch.float32, key
        assert param.grad is not None and param.grad.dtype == torch.float32 and torch.isfinite(param.grad).all(), key
    assert any(not torch.equal(param, before[key]) for key, param in model.named_parameters())
