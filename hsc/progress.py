"""Progress bars that show a count, a rate and an ETA (rich), in columns of fixed width.

Each column's text comes from a pure function below (tested without timing) and is padded
to one width, so a bar's line does not jump as its values change. A training bar also shows
the whole run's ETA from the epoch times measured so far (:func:`run_remaining`).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, TypeVar

from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

T = TypeVar("T")

UNKNOWN = "--"  # shown until a value is known (rich shows "?")
_PREFIXES = ("", "k", "M", "G", "T")
_NUMBER_WIDTH = len("999.9k")
DURATION_WIDTH = len("9:59:59")


def _scaled(value: float) -> tuple[str, str]:
    """``value`` as a number of at most 5 characters and an SI prefix, e.g. ("12.3", "k")."""
    power = 0
    while round(value / 1000 ** power, 1) >= 1000 and power < len(_PREFIXES) - 1:
        power += 1
    return f"{value / 1000 ** power:.1f}", _PREFIXES[power]


def format_rate(per_second: Optional[float], unit: str) -> str:
    """``12.3k pairs/s``; below one item a second ``10.6 s/batch``; ``-- it/s`` while unknown.

    Always ``rate_width(unit)`` characters: both forms end in ``unit`` and a 2-character ``/s`` or ``s/``.
    """
    if not per_second or per_second <= 0:
        text = f"{UNKNOWN} {unit}/s"
    elif per_second >= 1:
        number, prefix = _scaled(per_second)
        text = f"{number}{prefix} {unit}/s"
    else:
        number, prefix = _scaled(1 / per_second)
        text = f"{number}{prefix} s/{unit}"
    return text.rjust(rate_width(unit))


def rate_width(unit: str) -> int:
    return _NUMBER_WIDTH + 1 + len(unit) + 2


def format_byte_rate(per_second: Optional[float]) -> str:
    """``12.3 MB/s``, ``-- B/s`` while unknown; always 10 characters."""
    if not per_second or per_second <= 0:
        text = f"{UNKNOWN} B/s"
    else:
        number, prefix = _scaled(per_second)
        text = f"{number} {prefix}B/s"
    return text.rjust(len("999.9 kB/s"))


def format_count(completed: float, total: Optional[float]) -> str:
    """``  12/1133``, padded to the total's width; from 100,000 on ``  6.0M/10.0M``."""
    if total is not None and total < 100_000:
        return f"{int(completed):>{len(str(int(total)))}d}/{int(total)}"
    done = "".join(_scaled(completed)) if completed >= 1000 else str(int(completed))
    return f"{done:>{_NUMBER_WIDTH}}/{UNKNOWN if total is None else ''.join(_scaled(total))}"


def format_duration(seconds: Optional[float]) -> str:
    """``H:MM:SS`` below 10 hours, ``HHh MMm`` below 100, else ``Dd HHh``; ``-:--:--`` while
    unknown; always 7 characters."""
    if seconds is None:
        text = "-:--:--"
    else:
        whole = max(0, int(seconds + 0.5))
        hours, rest = divmod(whole, 3600)
        if hours < 10:
            text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        elif hours < 100:
            text = f"{hours}h {rest // 60:02d}m"
        else:
            text = f"{hours // 24}d {hours % 24:02d}h"
    return text.rjust(DURATION_WIDTH)


def task_rate(done: float, elapsed: Optional[float], recent: Optional[float], finished: bool) -> Optional[float]:
    """Items per second: ``recent`` (rich's estimate over the last 30 s) while running; the mean
    over the whole task when it has finished or while ``recent`` is unknown (the first step, or
    steps slower than rich's window); None before any item is done."""
    if (finished or recent is None) and done > 0 and elapsed:
        return done / elapsed
    return None if finished else recent


def remaining(total: Optional[float], completed: float, rate: Optional[float]) -> Optional[float]:
    """Seconds to finish at ``rate``; None when the total or the rate is unknown."""
    if total is None or not rate:
        return None
    return max(total - completed, 0.0) / rate


def run_remaining(epoch_left: Optional[float], epoch_steps_s: Optional[float], epochs_after: int,
                  epoch_s: Optional[float], validation_s: Optional[float]) -> Optional[float]:
    """Seconds to the end of a training run: the rest of this epoch's steps, its validation,
    then ``epochs_after`` epochs of ``epoch_s`` each (the measured mean wall time of an epoch,
    validation and checkpoint included). Before the first epoch is measured, an epoch is
    estimated as this epoch's projected steps (``epoch_steps_s``) plus its validation, whose
    time is unknown (0) until a validation has run."""
    if epoch_left is None:
        return None
    validation = validation_s or 0.0
    per_epoch = epoch_s if epoch_s is not None else (epoch_steps_s or 0.0) + validation
    return epoch_left + validation + epochs_after * per_epoch


def _rate(task: Task) -> Optional[float]:
    # ``resumed_from``: units done before this run (a resumed download), not counted in its rate.
    done = task.completed - task.fields.get("resumed_from", 0)
    elapsed = task.finished_time if task.finished else task.elapsed
    return task_rate(done, elapsed, task.speed, task.finished)


class _FixedColumn(ProgressColumn):
    """A column whose text never wraps: a line too wide for the terminal crops, not folds."""

    def get_table_column(self) -> Column:
        return Column(no_wrap=True)


class CountColumn(_FixedColumn):
    def render(self, task: Task) -> Text:
        return Text(format_count(task.completed, task.total), style="progress.download")


class RateColumn(_FixedColumn):
    """Items per second, or seconds per item below one a second (rich has only a bytes/s column)."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(format_rate(_rate(task), self.unit), style="progress.data.speed")


class ByteRateColumn(_FixedColumn):
    def render(self, task: Task) -> Text:
        return Text(format_byte_rate(_rate(task)), style="progress.data.speed")


class ElapsedColumn(_FixedColumn):
    def render(self, task: Task) -> Text:
        return Text(format_duration(task.finished_time if task.finished else task.elapsed), style="progress.elapsed")


class RemainingColumn(_FixedColumn):
    """``eta H:MM:SS`` of this task."""

    def render(self, task: Task) -> Text:
        left = 0.0 if task.finished else remaining(task.total, task.completed, _rate(task))
        return Text(f"eta {format_duration(left)}", style="progress.remaining")


class RunRemainingColumn(_FixedColumn):
    """``run eta H:MM:SS``: the whole run's ETA of a task that carries the fields of
    :func:`run_remaining` (``epochs_after``, ``epoch_s``, ``validation_s``); blank for others."""

    def render(self, task: Task) -> Text:
        label = "run eta "
        if "epochs_after" not in task.fields:
            return Text(" " * (len(label) + DURATION_WIDTH))
        rate = _rate(task)
        left = run_remaining(remaining(task.total, task.completed, rate), remaining(task.total, 0, rate),
                             task.fields["epochs_after"], task.fields.get("epoch_s"), task.fields.get("validation_s"))
        return Text(label + format_duration(left), style="progress.remaining")


def _description() -> TextColumn:
    return TextColumn("{task.description}", table_column=Column(no_wrap=True))


def bar(transfer: bool = False, unit: str = "it", run_eta: bool = False) -> Progress:
    """A progress bar: bytes with B/s and ETA when ``transfer``, else counts with a rate, the
    time elapsed and the ETA. ``run_eta`` (training) shows the whole run's ETA instead of the
    time elapsed, from the fields of :func:`run_remaining` on each task, and lets the bar take
    the width the other columns leave, so the line fits an 80-column terminal."""
    if transfer:
        columns = [_description(), BarColumn(), DownloadColumn(), ByteRateColumn(),
                   RemainingColumn()]
    elif run_eta:
        columns = [_description(), BarColumn(bar_width=None), CountColumn(),
                   RateColumn(unit), RemainingColumn(), RunRemainingColumn()]
    else:
        columns = [_description(), BarColumn(), CountColumn(), RateColumn(unit),
                   ElapsedColumn(), RemainingColumn()]
    return Progress(*columns)


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` behind a bar with count, rate and ETA."""
    with bar(unit=unit) as progress:
        yield from progress.track(items, total=total, description=description)
