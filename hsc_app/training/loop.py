"""The training loop: hinge loss, Adam with step decay, clipping, AMP, validation, resume.

Checkpoints (``<out>/last.pt`` at each epoch end, ``<out>/best.pt`` at each new best dev
rsum) are written atomically. Every epoch reseeds torch from (seed, epoch) and shuffles with
its own generator, so a run resumed from ``last.pt`` follows exactly the same trajectory as
one that was never interrupted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hsc.checkpoint import check_fits, load_checkpoint, load_model, save_checkpoint
from hsc.data.batches import PairBatch, PairDataset, collate_pairs
from hsc.data.store import SplitReader
from hsc.devices import EVALUATE_MEMORY_ADVICE, out_of_memory_advice
from hsc.distributed import start
from hsc.errors import HscError
from hsc.evaluation.scoring import ScoresCollapsed, validate
from hsc.hashing import sha256_file
from hsc.loss import ContrastiveLoss, InfoNCELoss, hardest_negatives, shortlist_objective
from hsc.models.base import RetrievalModel
from hsc.models.config import DataShape, ModelSpec
from hsc.models.registry import build_model
from hsc_app.params import Params
from hsc.progress import bar
from hsc.training.collapse import FloorWatch, floor_patience
from hsc_app.training.curves import staged_curves
from hsc.training.distributed import Gather, batch_plan, broadcast_parameters, pad_tokens, sync_batchnorm
from hsc.training.phrases import phrase_objective
from hsc.training.precision import autocast_dtype, grad_scaler
from hsc_app.training.resume import resumable_state, run_fingerprint
from hsc.training.step import optimisation_step


@dataclass
class TrainResult:
    best_rsum: float
    best_epoch: int
    best_path: Path
    last_path: Path


def learning_rate(base_lr: float, lr_update: int, epoch: int) -> float:
    """SCAN's schedule: lr x 0.1 every ``lr_update`` epochs (epochs counted from 0)."""
    return base_lr * (0.1 ** (epoch // lr_update))


def epoch_label(epoch: int, epochs: int, mean_loss: float | None) -> str:
    """``epoch  3/50 loss 12.346``, one width for the whole run so the bar does not jump."""
    if mean_loss is None:
        loss = "--"
    else:  # the most decimals that fit in 6 characters (up to 999,999)
        loss = f"{mean_loss:.3f}"
        for decimals in (1, 0):
            if len(loss) > 6:
                loss = f"{mean_loss:.{decimals}f}"
    return f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs} loss {loss:>6}"


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class Trainer:
    """Trains one model on ``<data>/train.h5``, validating on ``<data>/dev.h5``.

    Under torchrun every rank trains on its share of each global batch with single-process
    semantics (:mod:`hsc.training.distributed`); rank 0 alone writes checkpoints and curves.
    """

    def __init__(self, params: Params, data_dir: Path, out_dir: Path, metrics_dir: Path,
                 restart: bool = False) -> None:
        self.params = params
        self.restart = restart  # ignore last.pt (e.g. a damaged one) and start afresh
        self.cfg = params.train
        self.world, self.device = start(self.cfg.device, "train.device")
        self.autocast = autocast_dtype(self.cfg.amp, self.device)
        self.out_dir = out_dir
        self.metrics_dir = metrics_dir
        self.train_reader = SplitReader(data_dir / "train.h5")
        self.dev_reader = SplitReader(data_dir / "dev.h5")
        self.vocab_sha256 = self.train_reader.vocab_sha256
        if self.dev_reader.vocab_sha256 != self.vocab_sha256:
            raise HscError(f"{data_dir}: train.h5 and dev.h5 were prepared with different vocabularies; re-run `hsc prepare`")
        torch.manual_seed(self.cfg.seed)
        self.model = self._build_model().to(self.device)  # before the fingerprint: it checks train.init
        if self.world.active:
            broadcast_parameters(sync_batchnorm(self.model))
        self.fingerprint = run_fingerprint(params, {
            "vocab_sha256": self.vocab_sha256,
            "train_sources": self.train_reader.attrs.get("source_sha256"),
            "dev_sources": self.dev_reader.attrs.get("source_sha256"),
            "init": sha256_file(Path(self.cfg.init)) if self.cfg.init else None,
        })
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scaler = grad_scaler(self.autocast, self.device)
        # The hinge loss, switched to hardest negatives after the warm-up; the model's objective wraps it.
        self.ranking = ContrastiveLoss(margin=self.cfg.margin, max_violation=self.cfg.max_violation)
        self.objective = phrase_objective(self.model.objective(self.ranking, self.train_reader, data_dir / "vocab.json"),
                                          self.train_reader, self.cfg.phrase_loss, self.cfg.margin)
        shortlist_ranking = (InfoNCELoss(self.cfg.shortlist_temperature) if self.cfg.shortlist_objective == "infonce"
                             else self.ranking)
        self.objective = shortlist_objective(self.objective, self.model, shortlist_ranking, self.cfg.shortlist_loss)
        size = self.cfg.batch_size
        self.memory_advice = (f"at train.batch_size={size} try a smaller batch, "
                              f"e.g. dvc exp run -S train.batch_size={max(2, size // 2)}")

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def _build_model(self) -> RetrievalModel:
        reader = self.train_reader
        if self.cfg.init is None:
            shape = DataShape(img_dim=reader.feat_dim, regions=reader.regions, vocab_size=reader.vocab_size)
            return build_model(ModelSpec.resolve(self.params.model.name, shape, self.params.model.model_dump()))
        # Fine-tuning: the architecture is the starting checkpoint's, whatever params.model says.
        init_path = Path(self.cfg.init)
        model, init = load_model(init_path)
        check_fits(init_path, init, reader)
        return model

    def _resume(self) -> tuple[int, int, float, int, list[dict[str, float]], list[dict[str, float]]]:
        """(start epoch, step, best rsum, best epoch, epoch records, mid-epoch checks) from ``last.pt`` or afresh."""
        state = resumable_state(self.last_path, self.fingerprint, self.restart)
        if state is None:
            return 0, 0, -math.inf, 0, [], []
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state.get("scaler"):  # empty when the run so far had no float16 AMP
            self.scaler.load_state_dict(state["scaler"])
        print(f"resuming from {self.last_path} after epoch {state['epoch']}")
        best_rsum, best_epoch = state["best_rsum"], state["best_epoch"]
        if self.best_path.exists():  # a mid-epoch validation may have found a better model since
            best = load_checkpoint(self.best_path)
            if best.get("params_sha256") == self.fingerprint and best["dev_metrics"]["rsum"] > best_rsum:
                best_rsum, best_epoch = best["dev_metrics"]["rsum"], best["epoch"]
        return state["epoch"], state["step"], best_rsum, best_epoch, state["history"], state["checks"]

    def _epoch_seed(self, epoch: int) -> int:
        return self.cfg.seed * 1_000_003 + epoch

    def _loader(self, epoch: int) -> tuple[DataLoader, list[Gather]]:
        """This rank's share of each global batch of the epoch, and the gathers that join the shares."""
        generator = torch.Generator().manual_seed(self._epoch_seed(epoch))
        order = torch.randperm(self.train_reader.n_captions, generator=generator).tolist()
        plan = batch_plan(order, self.cfg.batch_size, self.world)
        loader = DataLoader(PairDataset(self.train_reader), batch_sampler=[share.indices for share in plan],
                            collate_fn=collate_pairs, num_workers=self.cfg.workers,
                            pin_memory=self.device.type == "cuda")
        return loader, [share.gather for share in plan]

    def _step(self, batch: PairBatch, gather: Gather) -> float:
        with out_of_memory_advice(self.memory_advice):
            loss = optimisation_step(self.model, self.objective, self.optimizer, self.scaler, self.cfg.grad_clip,
                                     pad_tokens(batch.to(self.device), gather), gather, self.autocast)
        return loss.item()

    def _watch_floor(self, watch: FloorWatch, loss: float, batch: PairBatch, epoch: int, step: int) -> None:
        """Warn once per streak of ``watch.patience`` steps with the loss at the constant-score floor."""
        floor = self.ranking.constant_floor(len(batch.lengths))
        if watch.at_floor_too_long(loss, floor):
            print(f"warning: the loss has sat at its constant-score floor ({floor:g}) for {watch.patience} steps "
                  f"(epoch {epoch + 1}, step {step}): the scores have collapsed to one value; "
                  f"try train.max_violation_warmup=1 or a lower train.lr")

    def _validate(self, epoch: int, step: int, lr: float, history: list[dict[str, float]]) -> dict[str, float]:
        ev = self.params.evaluate
        try:
            with out_of_memory_advice(EVALUATE_MEMORY_ADVICE):
                metrics = validate(self.model, self.dev_reader, device=self.device, batch_size=ev.encode_batch,
                                   img_block=ev.img_block, cap_block=ev.cap_block)
        except ScoresCollapsed as exc:  # never kept as best.pt: the pessimistic ranks would still rate it
            raise HscError(f"the model collapsed at epoch {epoch + 1}, step {step}, lr {lr:g} ({exc}); "
                           f"{self._last_good(history)}; try train.max_violation_warmup=1 or a lower train.lr"
                           ) from None
        return metrics

    def _last_good(self, history: list[dict[str, float]]) -> str:
        if not history:
            return "no checkpoint was written yet"
        return f"{self.last_path} keeps the last good state (epoch {history[-1]['epoch']})"

    def _keep_best(self, dev: dict[str, float], epoch: int, step: int, best_rsum: float,
                   best_epoch: int) -> tuple[float, int]:
        """Write ``best.pt`` when ``dev`` beats ``best_rsum``; return the (possibly new) best."""
        if dev["rsum"] <= best_rsum:
            return best_rsum, best_epoch
        if self.world.main:
            save_checkpoint(self.best_path, self.model, vocab_sha256=self.vocab_sha256, epoch=epoch, step=step,
                            dev_metrics=dev, params_sha256=self.fingerprint)
        return dev["rsum"], epoch

    def run(self) -> TrainResult:
        start_epoch, step, best_rsum, best_epoch, history, checks = self._resume()
        epochs = self.cfg.epochs
        if start_epoch >= epochs:
            print(f"{self.last_path} is already trained to epoch {start_epoch} (train.epochs={epochs})")
        self.model.train()
        watch = FloorWatch(floor_patience(math.ceil(self.train_reader.n_captions / self.cfg.batch_size)))
        epoch_times: list[float] = []  # wall seconds per epoch in this process: steps, validation, checkpoint
        validation_times: list[float] = []  # of the end-of-epoch validations
        with staged_curves(self.metrics_dir, history, checks, self.world.main) as curves, \
                bar(unit="batch", run_eta=True) as progress:
            for epoch in range(start_epoch, epochs):
                epoch_start = time.perf_counter()
                torch.manual_seed(self._epoch_seed(epoch))  # dropout stream of this epoch
                lr = learning_rate(self.cfg.lr, self.cfg.lr_update, epoch)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.ranking.max_violation = hardest_negatives(self.cfg.max_violation, self.cfg.max_violation_warmup,
                                                               epoch)
                loader, gathers = self._loader(epoch)
                task = progress.add_task(epoch_label(epoch, epochs, None), total=len(loader),
                                         epochs_after=epochs - epoch - 1, epoch_s=mean(epoch_times),
                                         validation_s=mean(validation_times))
                loss_sum = 0.0
                epoch_checks: list[dict[str, float]] = []  # kept in last.pt only once the epoch ends
                for batch_index, (batch, gather) in enumerate(zip(loader, gathers)):
                    loss = self._step(batch, gather)
                    step += 1
                    if not math.isfinite(loss):
                        raise HscError(f"loss became {loss} at epoch {epoch + 1}, step {step}; "
                                       f"{self._last_good(history)}; try a lower train.lr or train.amp=false")
                    self._watch_floor(watch, loss, batch, epoch, step)
                    loss_sum += loss
                    progress.update(task, advance=1,
                                    description=epoch_label(epoch, epochs, loss_sum / (batch_index + 1)))
                    mid_epoch = batch_index + 1 < len(loader)
                    if self.cfg.val_every_steps and step % self.cfg.val_every_steps == 0 and mid_epoch:
                        dev = self._validate(epoch, step, lr, history)
                        best_rsum, best_epoch = self._keep_best(dev, epoch + 1, step, best_rsum, best_epoch)
                        check = {"epoch": round(epoch + (batch_index + 1) / len(loader), 3), "step": step,
                                 **{f"dev/{key}": value for key, value in dev.items()}, "dev/best_rsum": best_rsum}
                        epoch_checks.append(check)
                        if self.world.main:
                            curves.log_check(check)
                            print(f"step {step} (epoch {check['epoch']:g}): dev rsum {dev['rsum']:.2f}  "
                                  f"(best {best_rsum:.2f} at epoch {best_epoch})")
                progress.remove_task(task)
                validation_start = time.perf_counter()
                dev = self._validate(epoch, step, lr, history)
                validation_times.append(time.perf_counter() - validation_start)
                best_rsum, best_epoch = self._keep_best(dev, epoch + 1, step, best_rsum, best_epoch)
                record = {"epoch": epoch + 1, "step": step, "train/loss": loss_sum / len(loader), "train/lr": lr,
                          **{f"dev/{key}": value for key, value in dev.items()}, "dev/best_rsum": best_rsum}
                history.append(record)
                checks.extend(epoch_checks)
                if self.world.main:
                    save_checkpoint(self.last_path, self.model, vocab_sha256=self.vocab_sha256, epoch=epoch + 1,
                                    step=step, best_rsum=best_rsum, best_epoch=best_epoch, history=history,
                                    checks=checks, optimizer=self.optimizer.state_dict(),
                                    scaler=self.scaler.state_dict(), params_sha256=self.fingerprint)
                    curves.log_epoch(record)
                    print(f"epoch {epoch + 1} (step {step}): loss {record['train/loss']:.4f}  "
                          f"dev rsum {dev['rsum']:.2f}  (best {best_rsum:.2f} at epoch {best_epoch})")
                epoch_times.append(time.perf_counter() - epoch_start)
        if self.world.main and not self.best_path.exists():
            raise HscError(f"{self.out_dir}: no best.pt was written; delete the directory and train again")
        return TrainResult(best_rsum, best_epoch, self.best_path, self.last_path)
