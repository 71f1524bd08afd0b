"""Progress bars that show a count, a rate and an ETA (rich)."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

T = TypeVar("T")


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``12.3 it/s`` (rich only has a bytes/s column)."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{speed:,.1f} {self.unit}/s", style="progress.data.speed")


def bar(transfer: bool = False, unit: str = "it") -> Progress:
    """A progress bar: bytes with MB/s and ETA when ``transfer``, else counts with a rate and ETA."""
    if transfer:
        columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   RateColumn(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    return Progress(*columns)


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` behind a bar with count, rate and ETA."""
    with bar(unit=unit) as progress:
        yield from progress.track(items, total=total, description=description)
