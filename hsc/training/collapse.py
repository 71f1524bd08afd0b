"""Noticing a model whose scores have collapsed to one value while it trains.

When every score of a batch is equal, each query's negatives cost exactly the margin, so the
hinge loss sits at :meth:`hsc.loss.ContrastiveLoss.constant_floor`. A loss that stays there
for many consecutive steps means the model has stopped telling pairs apart (hardest negatives
from a random start do this); the dev validation then stops the run (see
:class:`hsc.evaluation.scoring.ScoresCollapsed`), but the user should hear it sooner.
"""

from __future__ import annotations

FLOOR_STEPS = 50  # consecutive steps at the floor before the warning (at most half an epoch)
FLOOR_RTOL = 1e-3  # |loss - floor| <= this x floor counts as at the floor


def floor_patience(steps_per_epoch: int) -> int:
    """``FLOOR_STEPS``, or half an epoch for runs with short epochs."""
    return min(FLOOR_STEPS, max(1, steps_per_epoch // 2))


class FloorWatch:
    """Counts consecutive steps whose loss is at the constant-score floor."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.streak = 0

    def at_floor_too_long(self, loss: float, floor: float) -> bool:
        """Record one step; True exactly when the streak reaches ``patience`` (one warning per streak).

        A zero floor (margin 0) is also the loss of a perfect model, so it never counts.
        """
        at_floor = floor > 0 and abs(loss - floor) <= FLOOR_RTOL * floor
        self.streak = self.streak + 1 if at_floor else 0
        return self.streak == self.patience
