"""The hinge ranking loss against a hand computation."""

from __future__ import annotations

import pytest
import torch

from hsc.loss import ContrastiveLoss, hardest_negatives

SCORES = torch.tensor([[0.9, 0.8, 0.1],
                       [0.3, 0.5, 0.6],
                       [0.2, 0.75, 0.7]])
# Row i (image i -> captions), costs [0.2 + s_ij - s_ii]_+ for j != i:
#   row 0: 0.1, 0        row 1: 0, 0.3        row 2: 0, 0.25
# Column j (caption j -> images), costs [0.2 + s_ij - s_jj]_+ for i != j:
#   col 0: 0, 0          col 1: 0.5, 0.45     col 2: 0, 0.1


def test_hardest_negatives_sum_each_rows_and_columns_worst_violation() -> None:
    loss = ContrastiveLoss(margin=0.2, max_violation=True)(SCORES)
    assert torch.isclose(loss, torch.tensor((0.1 + 0.3 + 0.25) + (0.0 + 0.5 + 0.1)))


def test_sum_over_negatives_adds_every_violation() -> None:
    loss = ContrastiveLoss(margin=0.2, max_violation=False)(SCORES)
    assert torch.isclose(loss, torch.tensor((0.1 + 0.3 + 0.25) + (0.5 + 0.45 + 0.1)))


def test_positives_never_count_and_a_wide_gap_costs_nothing() -> None:
    scores = torch.eye(4) * 0.9 + 0.05
    assert ContrastiveLoss(margin=0.2)(scores) == 0
    assert torch.isclose(ContrastiveLoss(margin=1.0)(scores), torch.tensor(8 * 0.1))


def test_gradient_reaches_the_hardest_negatives_only() -> None:
    scores = SCORES.clone().requires_grad_(True)
    ContrastiveLoss(margin=0.2)(scores).backward()
    # Hardest: rows (0,1) (1,2) (2,1), columns (0,1) for column 1 and (1,2) for column 2; column 0 has
    # no violation. Each hardest negative pushes +1 on itself and -1 on its positive.
    expected = torch.tensor([[-1.0, 2.0, 0.0],
                             [0.0, -2.0, 2.0],
                             [0.0, 1.0, -2.0]])
    assert torch.allclose(scores.grad, expected)


def test_constant_scores_cost_exactly_the_floor_in_both_modes() -> None:
    scores = torch.full((5, 5), 0.7)
    for max_violation, floor in ((True, 2 * 0.2 * 5), (False, 2 * 0.2 * 5 * 4)):
        loss_fn = ContrastiveLoss(margin=0.2, max_violation=max_violation)
        assert loss_fn.constant_floor(5) == pytest.approx(floor)
        assert torch.isclose(loss_fn(scores), torch.tensor(floor))


def test_warmup_epochs_use_the_sum_then_hardest_negatives() -> None:
    assert [hardest_negatives(True, 2, epoch) for epoch in range(4)] == [False, False, True, True]
    assert [hardest_negatives(True, 0, epoch) for epoch in range(2)] == [True, True]
    assert not any(hardest_negatives(False, 1, epoch) for epoch in range(3))
