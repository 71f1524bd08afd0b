"""What progress bars print: rates, durations, counts and the training run's ETA, in fixed widths.

Pure functions on given numbers; nothing here is timed.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hsc.progress import (bar, format_byte_rate, format_count, format_duration, format_rate, remaining,
                          run_remaining, task_rate)
from hsc_app.training.loop import epoch_label

RATES = [None, 0.0, 1e-4, 0.0943, 0.5, 0.999, 1.0, 9.99, 999.94, 999.96, 1e3, 5.5e5, 999_960.0, 1.2e7, 3e12]


def test_rates_below_one_a_second_show_seconds_per_item():
    assert format_rate(1 / 10.6, "batch").strip() == "10.6 s/batch"
    assert format_rate(12_345.0, "pairs").strip() == "12.3k pairs/s"
    assert format_rate(2.0, "batch").strip() == "2.0 batch/s"
    assert format_rate(999.96, "it").strip() == "1.0k it/s"  # rounds into the next prefix, not to "1000.0"


def test_an_unknown_rate_shows_a_placeholder_not_a_question_mark():
    assert format_rate(None, "batch").strip() == "-- batch/s"
    assert format_byte_rate(None).strip() == "-- B/s"
    assert format_duration(None).strip() == "-:--:--"


@pytest.mark.parametrize("unit", ["it", "batch", "pairs"])
def test_rate_width_never_changes(unit):
    assert len({len(format_rate(rate, unit)) for rate in RATES}) == 1
    assert len({len(format_byte_rate(rate)) for rate in RATES[:-1]}) == 1


def test_durations_keep_one_width_from_seconds_to_weeks():
    cases = {0: "0:00:00", 59.6: "0:01:00", 3599.4: "0:59:59", 9 * 3600 + 59 * 60 + 59: "9:59:59",
             11.8 * 3600: "11h 48m", 590 * 3600: "24d 14h"}
    for seconds, text in cases.items():
        assert format_duration(seconds) == text.rjust(7)
    assert format_duration(-3) == "0:00:00"


@pytest.mark.parametrize("total", [63, 1133, 99_999, 125_000_000, None])
def test_a_task_count_keeps_its_width(total):
    values = [0, 1, 9, 999, 1000, 54_321] + ([total] if total else [])
    widths = {len(format_count(done, total)) for done in values if total is None or done <= total}
    assert len(widths) == 1
    assert format_count(7, 1133) == "   7/1133"
    assert format_count(6_000_000, 10_000_000) == "  6.0M/10.0M"


def test_rate_is_recent_while_running_and_the_mean_when_finished_or_unknown():
    assert task_rate(done=5, elapsed=10.0, recent=2.5, finished=False) == 2.5
    assert task_rate(done=1, elapsed=10.6, recent=None, finished=False) == pytest.approx(1 / 10.6)  # one slow step
    assert task_rate(done=100, elapsed=0.5, recent=None, finished=True) == 200  # a quick task: no "?"
    assert task_rate(done=100, elapsed=4.0, recent=90.0, finished=True) == 25
    assert task_rate(done=0, elapsed=3.0, recent=None, finished=False) is None


def test_remaining_time_needs_a_total_and_a_rate():
    assert remaining(63, 21, 2.0) == 21
    assert remaining(63, 70, 2.0) == 0
    assert remaining(None, 21, 2.0) is None and remaining(63, 21, None) is None


def test_run_eta_adds_the_measured_epochs_with_their_validation():
    # 100 s of this epoch's steps left; 3 epochs after it; an epoch measured at 500 s, its validation 20 s.
    assert run_remaining(100, 400, epochs_after=3, epoch_s=500, validation_s=20) == 100 + 20 + 3 * 500
    # Before any epoch ends: this epoch's projected steps stand for each one, validation not yet known.
    assert run_remaining(100, 400, epochs_after=3, epoch_s=None, validation_s=None) == 100 + 3 * 400
    assert run_remaining(100, 400, epochs_after=0, epoch_s=500, validation_s=20) == 120  # the last epoch
    assert run_remaining(None, None, epochs_after=3, epoch_s=500, validation_s=20) is None


def test_epoch_label_keeps_its_width():
    losses = (None, 0.0123, 12.3456, 99.9996, 999.4, 5e4)
    labels = [epoch_label(epoch, 50, loss) for epoch in (0, 9, 49) for loss in losses]
    assert len({len(label) for label in labels}) == 1
    assert epoch_label(2, 50, 12.3456) == "epoch  3/50 loss 12.346"


def test_training_bar_is_one_line_of_80_columns_with_the_run_eta():
    progress = bar(unit="batch", run_eta=True)
    progress.add_task(epoch_label(0, 50, None), total=1133, epochs_after=49, epoch_s=None, validation_s=None)
    console = Console(file=io.StringIO(), width=80)
    console.print(progress.make_tasks_table(progress.tasks))
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 80
    assert lines[0].endswith("0/1133     -- batch/s eta -:--:-- run eta -:--:--")
