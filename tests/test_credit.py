"""SPEC 3 formulas against values computed by hand (the computation is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from detente.credit import (
    advantage_alignment_credit,
    advantages,
    credit,
    discounted_returns,
    leave_one_out_baseline,
    naive_credit,
    sum_rewards_credit,
)
from detente.train.loss import clipped_policy_loss, k3, policy_loss

ATOL = 1e-6


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def close(actual: torch.Tensor, expected: list[list[float]] | float) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- returns
def test_discounted_returns_by_hand() -> None:
    # gamma = 0.5, rewards r = [[1, 0, 2], [0, 1, 1]]
    # row 0: G_2 = 2; G_1 = 0 + 0.5*2 = 1; G_0 = 1 + 0.5*1 = 1.5
    # row 1: G_2 = 1; G_1 = 1 + 0.5*1 = 1.5; G_0 = 0 + 0.5*1.5 = 0.75
    G = discounted_returns(t([[1, 0, 2], [0, 1, 1]]), gamma=0.5)
    close(G, [[1.5, 1.0, 2.0], [0.75, 1.5, 1.0]])


def test_discounted_returns_gamma_one_is_reward_to_go() -> None:
    close(discounted_returns(t([[1, 2, 3]]), gamma=1.0), [[6, 5, 3]])


def test_discounted_returns_mask_drops_padded_rewards() -> None:
    # row 1 is 2 rounds long: its third reward (1) is padding and counts 0
    # row 1: G_2 = 0; G_1 = 1 + 0 = 1; G_0 = 0 + 0.5*1 = 0.5
    mask = t([[1, 1, 1], [1, 1, 0]])
    G = discounted_returns(t([[1, 0, 2], [0, 1, 1]]), gamma=0.5, mask=mask)
    close(G, [[1.5, 1.0, 2.0], [0.5, 1.0, 0.0]])


# ---------------------------------------------------------------- leave-one-out
G4 = [[1, 2, 3], [3, 2, 1], [0, 0, 6], [2, 4, 0]]


def test_leave_one_out_two_games_is_difference() -> None:
    # G from test_discounted_returns_by_hand: A^0 = G^0 - G^1, A^1 = G^1 - G^0
    # A^0 = [1.5-0.75, 1-1.5, 2-1] = [0.75, -0.5, 1]
    A = leave_one_out_baseline(t([[1.5, 1.0, 2.0], [0.75, 1.5, 1.0]]))
    close(A, [[0.75, -0.5, 1.0], [-0.75, 0.5, -1.0]])


def test_leave_one_out_whole_batch() -> None:
    # K = B = 4: A^i = G^i - (sum of the other three rows) / 3
    # row 0: others (G1+G2+G3)/3 = [5, 6, 7]/3  -> A = [1-5/3, 2-2, 3-7/3]   = [-2/3, 0, 2/3]
    # row 1: others (G0+G2+G3)/3 = [3, 6, 9]/3  -> A = [3-1, 2-2, 1-3]        = [2, 0, -2]
    # row 2: others (G0+G1+G3)/3 = [6, 8, 4]/3  -> A = [0-2, 0-8/3, 6-4/3]    = [-2, -8/3, 14/3]
    # row 3: others (G0+G1+G2)/3 = [4, 4, 10]/3 -> A = [2-4/3, 4-4/3, 0-10/3] = [2/3, 8/3, -10/3]
    A = leave_one_out_baseline(t(G4), group_size=None)
    close(A, [[-2 / 3, 0, 2 / 3], [2, 0, -2], [-2, -8 / 3, 14 / 3], [2 / 3, 8 / 3, -10 / 3]])


def test_leave_one_out_groups_of_two() -> None:
    # groups {row 0, row 1} and {row 2, row 3}: each row minus its partner
    # A^0 = [1-3, 2-2, 3-1] = [-2, 0, 2];  A^2 = [0-2, 0-4, 6-0] = [-2, -4, 6]
    A = leave_one_out_baseline(t(G4), group_size=2)
    close(A, [[-2, 0, 2], [2, 0, -2], [-2, -4, 6], [2, 4, -6]])


def test_leave_one_out_with_mask() -> None:
    # rows 0, 1, 2; row 2 stopped after round 0 and row 1 after round 1
    # t=0: all play -> row 0: 3 - (1+5)/2 = 0; row 1: 1 - (3+5)/2 = -3; row 2: 5 - (3+1)/2 = 3
    # t=1: rows 0, 1 -> row 0: 4 - 2 = 2; row 1: 2 - 4 = -2; row 2 padding -> 0
    # t=2: only row 0 plays -> no other game, baseline 0 -> A = 6; rows 1, 2 -> 0
    G = t([[3, 4, 6], [1, 2, 9], [5, 9, 9]])
    mask = t([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    close(leave_one_out_baseline(G, mask=mask), [[0, 2, 6], [-3, -2, 0], [3, 0, 0]])


def test_leave_one_out_leaves_out_the_other_seat_of_the_same_game() -> None:
    # rows 0, 1 are the two seats of game 7, rows 2, 3 those of game 9: each row's baseline is the
    # mean of the other game's two rows only
    # row 0: (G2+G3)/2 = [1, 2, 3] -> A = [0, 0, 0];    row 1: A = [3-1, 2-2, 1-3] = [2, 0, -2]
    # row 2: (G0+G1)/2 = [2, 2, 2] -> A = [-2, -2, 4];  row 3: A = [0, 2, -2]
    episode = torch.tensor([7, 7, 9, 9])
    A = leave_one_out_baseline(t(G4), episode=episode)
    close(A, [[0, 0, 0], [2, 0, -2], [-2, -2, 4], [0, 2, -2]])
    # one game per row: the plain leave-one-out
    close(leave_one_out_baseline(t(G4), episode=torch.arange(4)), leave_one_out_baseline(t(G4)))
    # in groups of two rows that are different games, nothing is left out beyond the row itself
    close(leave_one_out_baseline(t(G4), group_size=2, episode=torch.tensor([0, 1, 0, 1])),
          leave_one_out_baseline(t(G4), group_size=2))
    with pytest.raises(ValueError, match="episode must be"):
        leave_one_out_baseline(t(G4), episode=torch.tensor([0, 1]))


def test_advantages_is_returns_then_leave_one_out() -> None:
    # = test_discounted_returns_by_hand followed by test_leave_one_out_two_games_is_difference
    close(advantages(t([[1, 0, 2], [0, 1, 1]]), gamma=0.5), [[0.75, -0.5, 1.0], [-0.75, 0.5, -1.0]])


@pytest.mark.parametrize(("rows", "group_size", "match"), [
    (5, 2, "not divisible"),
    (4, 1, "at least 2"),
    (1, None, "at least 2"),
])
def test_leave_one_out_rejects_bad_groups(rows: int, group_size: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        leave_one_out_baseline(torch.zeros(rows, 3), group_size=group_size)


# ---------------------------------------------------------------- credit
A1 = [[1, -1, 2], [0, 2, -1]]
A2 = [[2, 1, -1], [1, -2, 3]]


def test_naive_credit_is_own_advantage() -> None:
    close(naive_credit(t(A1)), A1)


def test_sum_rewards_credit() -> None:
    # A1 + A2 elementwise
    close(sum_rewards_credit(t(A1), t(A2)), [[3, 0, 1], [1, 0, 2]])


def test_advantage_alignment_by_hand() -> None:
    # gamma = 0.5, beta = 0.5, so beta*gamma = 0.25; past_t = sum_{k<t} 0.5^(t-k) A1_k
    # row 0: past = [0, 0.5*1, 0.25*1 + 0.5*(-1)] = [0, 0.5, -0.25]
    #        C = [1 + 0, -1 + 0.25*0.5*1, 2 + 0.25*(-0.25)*(-1)] = [1, -0.875, 2.0625]
    # row 1: past = [0, 0.5*0, 0.25*0 + 0.5*2] = [0, 0, 1]
    #        C = [0 + 0, 2 + 0, -1 + 0.25*1*3] = [0, 2, -0.25]
    C = advantage_alignment_credit(t(A1), t(A2), gamma=0.5, beta=0.5)
    close(C, [[1, -0.875, 2.0625], [0, 2, -0.25]])


def test_advantage_alignment_without_beta_is_naive() -> None:
    close(advantage_alignment_credit(t(A1), t(A2), gamma=0.9, beta=0.0), A1)


def test_credit_dispatches_by_name() -> None:
    close(credit("naive", t(A1), gamma=0.5, beta=0.5), A1)
    close(credit("sum_rewards", t(A1), t(A2), gamma=0.5, beta=0.5), [[3, 0, 1], [1, 0, 2]])
    close(credit("adalign", t(A1), t(A2), gamma=0.5, beta=0.5), [[1, -0.875, 2.0625], [0, 2, -0.25]])


def test_credit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown credit algorithm"):
        credit("lola", t(A1), t(A2), gamma=0.9, beta=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the co-player"):
        credit("adalign", t(A1), gamma=0.9, beta=0.5)
    with pytest.raises(ValueError, match="same"):
        sum_rewards_credit(t(A1), t([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        naive_credit(torch.zeros(3))
    with pytest.raises(ValueError, match="beta"):
        advantage_alignment_credit(t(A1), t(A2), gamma=0.9, beta=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(t(A1), gamma=1.5)
    with pytest.raises(ValueError, match="mask shape"):
        discounted_returns(t(A1), gamma=0.9, mask=torch.ones(2, 2))


# ---------------------------------------------------------------- loss
LOGP = [[-0.5, -1.0]]
C = [[2.0, -1.0]]
H = [[0.6, 0.7]]


def test_loss_plain_policy_gradient() -> None:
    # rho = 1, kappa = 0, eta = 0.1: per decision -C*logp - eta*H
    # = [-2*(-0.5) - 0.06, -(-1)*(-1) - 0.07] = [0.94, -1.07]; mean = -0.065
    loss = policy_loss(t(LOGP), t(C), t(H), eta=0.1)
    close(loss, -0.065)
    # the mask keeps the first decision only: 0.94
    close(policy_loss(t(LOGP), t(C), t(H), eta=0.1, mask=t([[1, 0]])), 0.94)


def test_loss_truncated_importance_weight() -> None:
    # logp - logp_sampler = [ln 3, -ln 2] -> rho = [min(3, 2), 0.5] = [2, 0.5]
    # per decision -C*rho*logp - eta*H = [-2*2*(-0.5) - 0.06, -(-1)*0.5*(-1) - 0.07] = [1.94, -0.57]
    # mean = 0.685
    sampler = t([[-0.5 - math.log(3), -1.0 + math.log(2)]])
    logp = t(LOGP).requires_grad_()
    loss = policy_loss(logp, t(C), t(H), eta=0.1, logp_sampler=sampler)
    close(loss, 0.685)
    # rho is detached: d loss / d logp = -C * rho / N = [-2*2/2, 1*0.5/2]
    loss.backward()
    close(logp.grad, [[-2.0, 0.25]])  # type: ignore[arg-type]


def test_loss_k3_penalty() -> None:
    # logp_ref - logp = d = [0, ln 2] -> k3 = exp(d) - 1 - d = [0, 2 - 1 - ln 2]
    # per decision (kappa = 1, rho = 1): [0.94 + 0, -1.07 + 1 - ln 2]; mean below
    ref = t([[-0.5, -1.0 + math.log(2)]])
    close(k3(t(LOGP), ref), [[0.0, 1 - math.log(2)]])
    loss = policy_loss(t(LOGP), t(C), t(H), eta=0.1, logp_ref=ref, kappa=1.0)
    close(loss, (0.94 - 1.07 + 1 - math.log(2)) / 2)


def test_clipped_loss_by_hand() -> None:
    # ratio = exp(logp - logp_old) = [1.5, 0.5], eps = 0.2 -> clip(ratio) = [1.2, 0.8], eta = 0.1
    # C = [2, -1]: surrogate min(ratio*C, clip*C) = [min(3, 2.4), min(-0.5, -0.8)] = [2.4, -0.8]
    # per token -surrogate - eta*H = [-2.4 - 0.06, 0.8 - 0.07] = [-2.46, 0.73]; mean = -0.865
    # both are the clipped branch: no gradient
    old = t([[-0.5 - math.log(1.5), -1.0 + math.log(2)]])
    logp = t(LOGP).requires_grad_()
    loss = clipped_policy_loss(logp, old, t(C), t(H), eps=0.2, eta=0.1)
    close(loss, -0.865)
    loss.backward()
    close(logp.grad, [[0.0, 0.0]])  # type: ignore[arg-type]
    # C = [-1, 2]: min(-1.5, -1.2) = -1.5 and min(1.0, 1.6) = 1.0, the unclipped branch both times
    # per token [1.5 - 0.06, -1.0 - 0.07] = [1.44, -1.07]; mean = 0.185
    # d/d logp of -ratio*C/N = -C*ratio/2 = [0.75, -0.5]
    logp = t(LOGP).requires_grad_()
    loss = clipped_policy_loss(logp, old, t([[-1.0, 2.0]]), t(H), eps=0.2, eta=0.1)
    close(loss, 0.185)
    loss.backward()
    close(logp.grad, [[0.75, -0.5]])  # type: ignore[arg-type]
    # k3 to the reference, kappa = 1: ref = logp adds 0; ref = logp + ln 2 on the second adds 1 - ln 2
    ref = t([[-0.5, -1.0 + math.log(2)]])
    loss = clipped_policy_loss(t(LOGP), old, t(C), t(H), eps=0.2, eta=0.1, logp_ref=ref, kappa=1.0)
    close(loss, (-2.46 + 0.73 + 1 - math.log(2)) / 2)


def test_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kappa > 0 needs logp_ref"):
        policy_loss(t(LOGP), t(C), t(H), kappa=0.1)
    with pytest.raises(ValueError, match="C shape"):
        policy_loss(t(LOGP), t([[1.0]]), t(H))
