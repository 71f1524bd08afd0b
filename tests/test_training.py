"""The training loop: schedule, resume equality, stale checkpoints, NaN, collapse and init errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hsc.checkpoint import load_checkpoint, save_checkpoint
from hsc.errors import HscError
from hsc.loss import ContrastiveLoss
from hsc_app.params import Params
from hsc_app.training.loop import Trainer, learning_rate
from hsc_app.training.resume import run_fingerprint


def tiny_params(tiny_params_dict: dict, **train) -> Params:
    raw = {**tiny_params_dict, "train": {**tiny_params_dict["train"], **train}}
    return Params.model_validate(raw)


def test_learning_rate_decays_tenfold_every_lr_update_epochs():
    assert [learning_rate(2e-4, 2, e) for e in range(5)] == pytest.approx([2e-4, 2e-4, 2e-5, 2e-5, 2e-6])


def test_fingerprint_ignores_epochs_but_not_the_recipe(tiny_params_dict):
    base = run_fingerprint(tiny_params(tiny_params_dict), {"data": 1})
    assert run_fingerprint(tiny_params(tiny_params_dict, epochs=9), {"data": 1}) == base
    assert run_fingerprint(tiny_params(tiny_params_dict, lr=3e-3), {"data": 1}) != base
    assert run_fingerprint(tiny_params(tiny_params_dict), {"data": 2}) != base


def run(params: Params, data: Path, root: Path):
    return Trainer(params, data, root / "ckpt", root / "metrics").run()


def test_trains_and_writes_checkpoints_and_curves(tiny_prepared, tiny_params_dict, tmp_path):
    result = run(tiny_params(tiny_params_dict), tiny_prepared, tmp_path)
    assert result.best_path.exists() and result.last_path.exists()
    last = load_checkpoint(result.last_path)
    assert last["epoch"] == 2 and len(last["history"]) == 2
    steps = math.ceil(300 / 16)  # 60 images x 5 captions, batch 16
    train_curve = read_tsv(tmp_path / "metrics" / "train.tsv")
    assert [(row["epoch"], row["step"]) for row in train_curve] == [("1", str(steps)), ("2", str(2 * steps))]
    assert float(train_curve[0]["lr"]) == tiny_params_dict["train"]["lr"]
    dev_curve = read_tsv(tmp_path / "metrics" / "dev.tsv")
    assert [row["epoch"] for row in dev_curve] == ["1", "2"]
    assert float(dev_curve[-1]["best_rsum"]) == pytest.approx(result.best_rsum, abs=1e-3)
    summary = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    assert summary == {"best_dev_rsum": result.best_rsum, "epoch": 2, "step": 2 * steps}
    assert math.isfinite(result.best_rsum)


def read_tsv(path: Path) -> list[dict[str, str]]:
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    return [dict(zip(header, row)) for row in rows]


def test_an_interrupted_run_keeps_the_previous_curves_until_training_ends(tiny_prepared, tiny_params_dict,
                                                                         tmp_path, monkeypatch):
    run(tiny_params(tiny_params_dict, epochs=1), tiny_prepared, tmp_path)
    before = {name: (tmp_path / "metrics" / name).read_text() for name in ("train.tsv", "dev.tsv", "metrics.json")}

    def interrupted(self, *args):
        raise KeyboardInterrupt

    real_validate = Trainer._validate
    monkeypatch.setattr(Trainer, "_validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_params(tiny_params_dict, epochs=2), tiny_prepared, tmp_path)
    assert {name: (tmp_path / "metrics" / name).read_text() for name in before} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ckpt", "metrics"]  # no staging directory left

    monkeypatch.setattr(Trainer, "_validate", real_validate)
    run(tiny_params(tiny_params_dict, epochs=2), tiny_prepared, tmp_path)
    assert [row["epoch"] for row in read_tsv(tmp_path / "metrics" / "train.tsv")] == ["1", "2"]


def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tiny_prepared, tiny_params_dict, tmp_path, monkeypatch):
    params = tiny_params(tiny_params_dict)
    straight = run(params, tiny_prepared, tmp_path / "straight")

    calls = {"n": 0}
    real_validate = Trainer._validate

    def crash_in_second_epoch(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_validate(self, *args)

    monkeypatch.setattr(Trainer, "_validate", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(params, tiny_prepared, tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "ckpt" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(Trainer, "_validate", real_validate)
    resumed = run(params, tiny_prepared, tmp_path / "resumed")

    a, b = load_checkpoint(straight.last_path), load_checkpoint(resumed.last_path)
    assert a["history"] == b["history"]
    for name in ("train.tsv", "dev.tsv"):  # rebuilt from last.pt's history on resume
        resumed_curve, straight_curve = (tmp_path / run_dir / "metrics" / name for run_dir in ("resumed", "straight"))
        assert resumed_curve.read_text() == straight_curve.read_text()
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    assert resumed.best_rsum == straight.best_rsum


def test_checkpoint_from_other_params_is_not_resumed_silently(tiny_prepared, tiny_params_dict, tmp_path, capsys):
    run(tiny_params(tiny_params_dict, epochs=1), tiny_prepared, tmp_path)
    run(tiny_params(tiny_params_dict, epochs=1, lr=3e-3), tiny_prepared, tmp_path)
    assert "trained with other params, data or code" in capsys.readouterr().out


def test_raising_epochs_continues_a_finished_run(tiny_prepared, tiny_params_dict, tmp_path, capsys):
    run(tiny_params(tiny_params_dict, epochs=1), tiny_prepared, tmp_path)
    run(tiny_params(tiny_params_dict, epochs=2), tiny_prepared, tmp_path)
    assert "resuming from" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["epoch"] == 2


def test_nan_loss_stops_and_names_the_step_and_the_kept_checkpoint(tiny_prepared, tiny_params_dict, tmp_path, monkeypatch):
    params = tiny_params(tiny_params_dict)
    trainer = Trainer(params, tiny_prepared, tmp_path / "ckpt", tmp_path / "metrics")
    monkeypatch.setattr(trainer.objective.ranking, "forward", lambda scores: scores.sum() * float("nan"))
    with pytest.raises(HscError, match=r"loss became nan at epoch 1, step 1; no checkpoint was written yet"):
        trainer.run()


def test_collapsed_dev_scores_stop_training_and_are_never_best(tiny_prepared, tiny_params_dict, tmp_path,
                                                              monkeypatch):
    # A collapse as huge lrs cause it (lr 1e6 here gives a constant dev matrix with 2 threads, a 0/1 saturated
    # one with 1): in epoch 2 every weight into a 1-output layer is zeroed, so each score is sigmoid(bias).
    real_step = Trainer._step

    def collapsing_step(self, batch, gather):
        loss = real_step(self, batch, gather)
        if self.optimizer.param_groups[0]["lr"] < tiny_params_dict["train"]["lr"]:  # epoch 2 (lr_update 1)
            with torch.no_grad():
                for module in self.model.modules():
                    if isinstance(module, torch.nn.Linear) and module.out_features == 1:
                        module.weight.zero_()
        return loss

    monkeypatch.setattr(Trainer, "_step", collapsing_step)
    with pytest.raises(HscError, match=r"^the model collapsed at epoch 2, step 38, lr 0\.0001 \(.*dev\.h5: every "
                                       r"score is .*\); .*last\.pt keeps the last good state \(epoch 1\); try "
                                       r"train\.max_violation_warmup=1 or a lower train\.lr$"):
        run(tiny_params(tiny_params_dict), tiny_prepared, tmp_path)
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["epoch"] == 1
    best = load_checkpoint(tmp_path / "ckpt" / "best.pt")
    assert best["epoch"] == 1 and best["dev_metrics"]["rsum"] < 600


def test_loss_at_the_constant_score_floor_is_reported_once(tiny_prepared, tiny_params_dict, tmp_path, capsys):
    trainer = Trainer(tiny_params(tiny_params_dict, epochs=1), tiny_prepared, tmp_path / "ckpt", tmp_path / "m")
    anchor = next(trainer.model.parameters())
    # Training scores all one value (still attached to the weights); dev scoring is untouched.
    trainer.model.forward = lambda images, tokens, lengths, gather=None, phrases=None: anchor.sum() * 0 + torch.full((len(lengths),) * 2, 0.5)
    trainer.run()
    warnings = [line for line in capsys.readouterr().out.splitlines() if "constant-score floor" in line]
    # 19 steps, patience half an epoch (9): one streak, one warning; last batch (12) has its own floor.
    assert warnings == ["warning: the loss has sat at its constant-score floor (6.4) for 9 steps (epoch 1, step 9): "
                        "the scores have collapsed to one value; try train.max_violation_warmup=1 or a lower train.lr"]


def test_max_violation_warmup_uses_the_sum_loss_first(tiny_prepared, tiny_params_dict, tmp_path, monkeypatch):
    modes = []
    real_forward = ContrastiveLoss.forward

    def recording(self, scores):
        modes.append(self.max_violation)
        return real_forward(self, scores)

    monkeypatch.setattr(ContrastiveLoss, "forward", recording)
    run(tiny_params(tiny_params_dict, epochs=3, max_violation=True, max_violation_warmup=2), tiny_prepared, tmp_path)
    steps = math.ceil(300 / 16)
    assert modes == [False] * (2 * steps) + [True] * steps


def test_fingerprint_includes_the_warmup(tiny_params_dict):
    base = run_fingerprint(tiny_params(tiny_params_dict), {"data": 1})
    assert run_fingerprint(tiny_params(tiny_params_dict, max_violation_warmup=1), {"data": 1}) != base


def test_fine_tuning_refuses_a_checkpoint_with_another_vocabulary(tiny_prepared, tiny_params_dict, tmp_path):
    first = run(tiny_params(tiny_params_dict, epochs=1), tiny_prepared, tmp_path / "a")
    state = load_checkpoint(first.best_path)
    from hsc.models.config import ModelSpec
    from hsc.models.registry import build_model

    model = build_model(ModelSpec.from_dict(state["model_config"]))
    foreign = tmp_path / "foreign.pt"
    save_checkpoint(foreign, model, vocab_sha256="0" * 64)
    with pytest.raises(HscError, match="vocabulary sha256 .* differs from"):
        Trainer(tiny_params(tiny_params_dict, init=str(foreign)), tiny_prepared, tmp_path / "b", tmp_path / "m")


def test_fine_tuning_starts_from_the_given_weights(tiny_prepared, tiny_params_dict, tmp_path):
    first = run(tiny_params(tiny_params_dict, epochs=1), tiny_prepared, tmp_path / "a")
    trainer = Trainer(tiny_params(tiny_params_dict, init=str(first.best_path)), tiny_prepared,
                      tmp_path / "b", tmp_path / "m")
    start = load_checkpoint(first.best_path)["state_dict"]
    for key, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor.cpu(), start[key]), key


def test_cuda_out_of_memory_says_which_batch_size_to_try(tiny_prepared, tiny_params_dict, tmp_path, monkeypatch):
    trainer = Trainer(tiny_params(tiny_params_dict), tiny_prepared, tmp_path / "ckpt", tmp_path / "metrics")

    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer.model, "forward", out_of_memory)
    with pytest.raises(HscError, match=r"CUDA out of memory; at train.batch_size=16 .*train.batch_size=8"):
        trainer.run()


def test_validation_every_n_steps_runs_inside_epochs_and_is_logged(tiny_prepared, tiny_params_dict, tmp_path,
                                                                  monkeypatch, capsys):
    calls = []
    real_validate = Trainer._validate

    def counting(self, *args):
        calls.append(1)
        return real_validate(self, *args)

    monkeypatch.setattr(Trainer, "_validate", counting)
    run(tiny_params(tiny_params_dict, epochs=1, val_every_steps=5), tiny_prepared, tmp_path)
    steps = math.ceil(300 / 16)  # 60 images x 5 captions, batch 16
    assert len(calls) == (steps - 1) // 5 + 1  # every 5th step inside the epoch, then the epoch's end
    dev_curve = read_tsv(tmp_path / "metrics" / "dev.tsv")
    assert [(row["step"], row["epoch"]) for row in dev_curve] == [("5", "0.263"), ("10", "0.526"), ("15", "0.789"),
                                                                  (str(steps), "1")]
    out = capsys.readouterr().out
    assert "step 5 (epoch 0.263): dev rsum " in out and "step 15 (epoch 0.789): dev rsum " in out


def test_fingerprint_changes_with_the_package_code(tiny_params_dict, monkeypatch):
    import hsc_app.training.resume as resume

    base = run_fingerprint(tiny_params(tiny_params_dict), {"data": 1})
    monkeypatch.setattr(resume, "code_digest", lambda: "edited")
    assert run_fingerprint(tiny_params(tiny_params_dict), {"data": 1}) != base


def test_a_damaged_last_checkpoint_stops_the_run_unless_restart(tiny_prepared, tiny_params_dict, tmp_path):
    params = tiny_params(tiny_params_dict, epochs=1)
    first = run(params, tiny_prepared, tmp_path)
    first.last_path.write_bytes(first.last_path.read_bytes()[:20_000])  # truncated, as by a full disk or a bad copy
    with pytest.raises(HscError, match=r"last.pt: not a readable hsc checkpoint, truncated or corrupt .*; "
                                       r"delete it or pass --restart to start afresh$"):
        run(params, tiny_prepared, tmp_path)
    restarted = Trainer(params, tiny_prepared, tmp_path / "ckpt", tmp_path / "metrics", restart=True).run()
    assert load_checkpoint(restarted.last_path)["epoch"] == 1
