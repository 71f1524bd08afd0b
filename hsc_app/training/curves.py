"""Training curves by epoch, drawn by the top-level plots of dvc.yaml.

``<dir>/train.tsv`` has one row per epoch (epoch, global step, mean loss, lr);
``<dir>/dev.tsv`` one row per dev validation, at each epoch's end and every
``train.val_every_steps`` steps inside it (its epoch is then fractional, e.g. 2.5 halfway
through the third); ``<dir>/metrics.json`` holds the best dev rsum so far and the latest
epoch and step, for ``dvc metrics`` and ``dvc exp show``.

The directory is written to a staging sibling and replaces the old one only when training
ends, so an interrupted or failed run keeps the previous curves (DVC leaves them in place:
the outputs are ``persist: true``). The history also lives in the ``last`` checkpoint and
the curves are rebuilt from it when a run resumes: they always match the weights they came
with, even when a crash fell between logging an epoch and saving its checkpoint.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from hsc.atomic import atomic_directory, write_json, write_text

TRAIN_COLUMNS = ("epoch", "step", "loss", "lr")


class Curves:
    """Rewrites the TSVs and ``metrics.json`` under ``directory`` after every record."""

    def __init__(self, directory: Path, history: list[dict[str, float]], checks: list[dict[str, float]]) -> None:
        self.directory = directory
        self.history = list(history)  # epoch records: epoch, step, train/*, dev/*
        self.checks = list(checks)    # validations inside epochs: epoch, step, dev/*
        if self.history:
            self._write()

    def log_epoch(self, record: dict[str, float]) -> None:
        self.history.append(record)
        self._write()

    def log_check(self, record: dict[str, float]) -> None:
        self.checks.append(record)
        self._write()

    def _write(self) -> None:
        train_rows = [{"epoch": r["epoch"], "step": r["step"], "loss": r["train/loss"], "lr": r["train/lr"]}
                      for r in self.history]
        dev_rows = sorted((_dev_row(r) for r in [*self.history, *self.checks]), key=lambda row: row["step"])
        write_text(self.directory / "train.tsv", _tsv(TRAIN_COLUMNS, train_rows))
        write_text(self.directory / "dev.tsv", _tsv(tuple(dev_rows[0]), dev_rows))
        if self.history:  # the summary is the latest epoch's, so none before the first ends
            write_json(self.directory / "metrics.json", _summary(self.history[-1]))


def _dev_row(record: dict[str, float]) -> dict[str, float]:
    return {"epoch": record["epoch"], "step": record["step"],
            **{key.removeprefix("dev/"): value for key, value in record.items() if key.startswith("dev/")}}


def _tsv(columns: tuple[str, ...], rows: list[dict[str, float]]) -> str:
    lines = ["\t".join(columns)] + ["\t".join(_number(row[column]) for column in columns) for row in rows]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def _summary(record: dict[str, float]) -> dict[str, float]:
    """Three figures, so that `dvc exp show` keeps its columns for the test rsum next to them."""
    return {"best_dev_rsum": record["dev/best_rsum"], "epoch": record["epoch"], "step": record["step"]}


@contextlib.contextmanager
def staged_curves(directory: Path, history: list[dict[str, float]], checks: list[dict[str, float]],
                  enabled: bool) -> Iterator[Curves | None]:
    """Curves written under a staging directory that replaces ``directory`` when the block succeeds.

    ``enabled`` is false on every rank but the first: they yield None and write nothing.
    """
    if not enabled:
        yield None
        return
    with atomic_directory(directory) as staging:
        yield Curves(staging, history, checks)
