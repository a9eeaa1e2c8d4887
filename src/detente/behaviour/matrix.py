"""The figures of 2x2 matrix games, defined once: sampled from moves, or exact for memory-1 tables.

Action 0 is C (cooperate), 1 is D (defect). Over an agent's games, with
``a_t`` its move and ``b_t`` its co-player's in round t:

* ``cooperation_rate``           = #(a_t = C) / #rounds
* ``mutual_cooperation_rate``    = #(a_t = C, b_t = C) / #rounds
* ``retaliation_rate``           = #(a_t = D, b_{t-1} = D) / #(b_{t-1} = D),  t >= 1
* ``forgiveness_rate``           = #(a_t = C, b_{t-1} = C, b_{t-2} = D) / #(b_{t-1} = C, b_{t-2} = D),  t >= 2
* ``first_move_cooperation_rate`` = #(a_0 = C) / #games

:func:`matrix_figures` counts them in sampled play (a tournament's games, the
tabular trainer's batches). :func:`play_tables` gives their exact expected
values for two memory-1 tables, weighting round t by the probability that it
is played; the two agree up to sampling error (tests/test_behaviour.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detente.behaviour.figures import Figures, SeatGames
from detente.games.base import other
from detente.games.ipd import COOPERATE, DEFECT, MatrixGame, PayoffTable
from detente.policies.tabular import FIRST, STATES, joint_state

FIGURES = ("cooperation_rate", "mutual_cooperation_rate", "retaliation_rate", "forgiveness_rate",
           "first_move_cooperation_rate")


def matrix_figures(own: Tensor, theirs: Tensor, played: Tensor) -> Figures:
    """The :data:`FIGURES` from sampled moves.

    ``own``, ``theirs``: (N, T) long moves of the agent and its co-player in N games (any value on
    padding); ``played``: (N, T) bool, the rounds that were played (a game's played rounds come
    first). Figures without any qualifying round are None.
    """
    C, D = COOPERATE, DEFECT
    cooperated = (own == C) & played  # (N, T)
    provoked = (theirs[:, :-1] == D) & played[:, 1:]  # (N, T-1): other D at t-1, round t played
    forgivable = (theirs[:, :-2] == D) & (theirs[:, 1:-1] == C) & played[:, 2:]  # (N, T-2)
    return {
        "cooperation_rate": _ratio(cooperated.sum(), played.sum()),
        "mutual_cooperation_rate": _ratio((cooperated & (theirs == C)).sum(), played.sum()),
        "retaliation_rate": _ratio((provoked & (own[:, 1:] == D)).sum(), provoked.sum()),
        "forgiveness_rate": _ratio((forgivable & (own[:, 2:] == C)).sum(), forgivable.sum()),
        "first_move_cooperation_rate": _ratio(cooperated[:, 0].sum(), played[:, 0].sum()),
    }


def matrix_behaviour(seat_games: SeatGames) -> Figures:
    """:func:`matrix_figures` of the player in ``seat`` over its finished matrix games."""
    rows = []
    for game, seat in seat_games:
        if not isinstance(game, MatrixGame):
            raise TypeError(f"matrix_behaviour needs matrix games, got {type(game).__name__}")
        rows.append(([m[seat] for m in game.moves], [m[other(seat)] for m in game.moves]))
    N, T = len(rows), max((len(own) for own, _ in rows), default=0)  # N games, T rounds at most
    own, theirs = torch.zeros(N, T, dtype=torch.long), torch.zeros(N, T, dtype=torch.long)
    played = torch.zeros(N, T, dtype=torch.bool)
    for i, (a, b) in enumerate(rows):
        own[i, :len(a)], theirs[i, :len(b)], played[i, :len(a)] = torch.tensor(a), torch.tensor(b), True
    return matrix_figures(own, theirs, played)


def play_tables(
    table: Sequence[float],
    other_table: Sequence[float],
    payoffs: PayoffTable,
    n_rounds: int,
    continuation_prob: float | None = None,
) -> dict[str, float | None]:
    """Exact expected play of memory-1 ``table`` (seat 0) against ``other_table`` (seat 1).

    The joint action of round t has distribution ``d_t`` (2, 2) with
    ``d_0[a, b] = pi(a | first) pi'(b | first)`` and
    ``d_t[a', b'] = sum_{a, b} d_{t-1}[a, b] P[a, b, a', b']`` with
    ``P[a, b, a', b'] = pi(a' | ab) pi'(b' | ba)``.
    Round t is played with probability ``w_t = 1`` (fixed length) or ``continuation_prob^t`` (random
    length, capped at ``n_rounds``). Returns the expected ``reward`` and ``other_reward`` per game,
    ``reward_per_round`` and the :data:`FIGURES` of seat 0 as ``w``-weighted expected counts, e.g.
    ``retaliation_rate = sum_{t>=1} w_t P(a_t = D, b_{t-1} = D) / sum_{t>=1} w_t P(b_{t-1} = D)``.
    """
    pi, pi_other = _action_probs(table), _action_probs(other_table)  # (5, 2) each: pi[s, a]
    R = torch.tensor(payoffs, dtype=torch.float64)  # (2, 2, 2): R[a, b, seat]
    x, y = torch.meshgrid(torch.arange(2), torch.arange(2), indexing="ij")  # previous joint action
    P = pi[joint_state(x, y)][:, :, :, None] * pi_other[joint_state(y, x)][:, :, None, :]  # (2, 2, 2, 2)
    p = 1.0 if continuation_prob is None else continuation_prob
    C, D = COOPERATE, DEFECT
    sums = dict.fromkeys(("rounds", "reward", "other_reward", "coop", "mutual", "provoked", "retaliated",
                          "forgivable", "forgave"), 0.0)
    d = torch.outer(pi[FIRST], pi_other[FIRST])  # (2, 2): d_0
    history: list[Tensor] = []  # d_0 .. d_{t-1}
    for t in range(n_rounds):
        w = p**t
        sums["rounds"] += w
        sums["reward"] += w * float((d * R[..., 0]).sum())
        sums["other_reward"] += w * float((d * R[..., 1]).sum())
        sums["coop"] += w * float(d[C].sum())
        sums["mutual"] += w * float(d[C, C])
        if t >= 1:
            before = history[-1]  # d_{t-1}: P(a_t | x_{t-1}) = pi[joint_state(a, b)]
            sums["provoked"] += w * float(before[:, D].sum())
            sums["retaliated"] += w * float((before[:, D] * pi[joint_state(torch.arange(2), D), D]).sum())
        if t >= 2:
            # P(b_{t-2} = D, x_{t-1} = (a', C)) for each a', then pi(C | a' C)
            two_back = torch.einsum("a,aAB->AB", history[-2][:, D], P[:, D])  # (2, 2) over x_{t-1}
            sums["forgivable"] += w * float(two_back[:, C].sum())
            sums["forgave"] += w * float((two_back[:, C] * pi[joint_state(torch.arange(2), C), C]).sum())
        history.append(d)
        d = torch.einsum("xy,xyab->ab", d, P)
    rounds = sums["rounds"]
    return {
        "reward": sums["reward"],
        "other_reward": sums["other_reward"],
        "reward_per_round": sums["reward"] / rounds,
        "cooperation_rate": sums["coop"] / rounds,
        "mutual_cooperation_rate": sums["mutual"] / rounds,
        "retaliation_rate": sums["retaliated"] / sums["provoked"] if sums["provoked"] > 0 else None,
        "forgiveness_rate": sums["forgave"] / sums["forgivable"] if sums["forgivable"] > 0 else None,
        "first_move_cooperation_rate": float(pi[FIRST, C]),
    }


def _action_probs(table: Sequence[float]) -> Tensor:
    """(5,) cooperation probabilities -> (5, 2) probabilities of (cooperate, defect)."""
    if len(table) != len(STATES):
        raise ValueError(f"a memory-1 table has {len(STATES)} probabilities, got {len(table)}")
    p = torch.tensor(table, dtype=torch.float64)
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"probabilities must be in [0, 1], got {list(table)}")
    return torch.stack([p, 1 - p], dim=1)


def _ratio(hits: Tensor, trials: Tensor) -> float | None:
    return float(hits) / float(trials) if int(trials) else None
