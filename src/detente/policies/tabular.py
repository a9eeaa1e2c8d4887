"""Memory-1 tabular policies for 2x2 matrix games.

A memory-1 policy is five cooperation probabilities, one per *state*: the
first round, then the previous round's joint action seen from the agent's
own side (own move first). ``C`` is action 0 (``<A>``, cooperate in the IPD),
``D`` action 1 (``<B>``)::

    index  0      1    2    3    4
    state  first  CC   CD   DC   DD

This file holds the table layout (:data:`STATES`, :func:`joint_state`), the
memory-1 tables of the scripted IPD zoo (:func:`scripted_table`) and
:class:`TabularPolicy`, which plays a table through the game API — how
``detente eval --agents run:DIR`` plays an agent trained by
:mod:`detente.train.tabular` (its ``policy.json``:
:class:`detente.runs.TabularPolicyFile`). Memory-1 strategies: Press and
Dyson, PNAS 2012; Nowak and Sigmund, Nature 1993.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from detente.games.ipd import COOPERATE, DEFECT, LABELS, MOVES, MatrixView
from detente.policies.base import Decision, Policy
from detente.policies.scripted.matrix import GenerousTitForTat, RandomMove

STATES: tuple[str, ...] = ("first", "CC", "CD", "DC", "DD")
"""State names in table order; ``XY`` = own last move X, other's last move Y."""
STATE_LABELS: tuple[str, ...] = ("open", *(LABELS[own] + LABELS[theirs] for own in (COOPERATE, DEFECT)
                                             for theirs in (COOPERATE, DEFECT)))
""":data:`STATES` in the IPD prompt's move labels (A = cooperate): open, AA, AB, BA, BB."""
FIRST = 0

Index = TypeVar("Index")


def sigmoid(x: float) -> float:
    """``1 / (1 + exp(-x))``, written so that no ``x`` overflows: a logit's probability."""
    return 0.5 * (1.0 + math.tanh(x / 2))


def joint_state(own: Index, other: Index) -> Index:
    """Table index of the state after joint action (own, other): ``1 + 2*own + other``.

    Works on ints and on integer tensors of any shape alike.
    """
    return 1 + 2 * own + other  # type: ignore[operator, return-value]


# Memory-1 tables of the scripted zoo (policies/scripted/matrix.py), P(cooperate) per state.
# Grim is exact on its own play: if it cooperated last round, nobody defected before that.
_TFT_REPLIES = (1.0, 0.0, 1.0, 0.0)  # copy the other's last move: CC CD DC DD
_SCRIPTED: dict[str, tuple[float, ...]] = {
    "allc": (1.0, 1.0, 1.0, 1.0, 1.0),
    "alld": (0.0, 0.0, 0.0, 0.0, 0.0),
    "tft": (1.0, *_TFT_REPLIES),
    "stft": (0.0, *_TFT_REPLIES),
    "gtft": (1.0, 1.0, GenerousTitForTat.forgive, 1.0, GenerousTitForTat.forgive),
    "grim": (1.0, 1.0, 0.0, 0.0, 0.0),
    "wsls": (1.0, 1.0, 0.0, 0.0, 1.0),
}


def scripted_table(spec: str) -> tuple[float, ...]:
    """Cooperation probabilities (5,) of the scripted strategy ``spec``: a short name or ``random:p``."""
    short, _, param = spec.partition(":")
    if short == "random":
        try:
            strategy = RandomMove(float(param)) if param else RandomMove()
        except ValueError as error:
            raise ValueError(f"bad co-player {spec!r}: {error}") from None
        return (strategy.p,) * len(STATES)
    if short in _SCRIPTED and not param:
        return _SCRIPTED[short]
    known = ", ".join([*_SCRIPTED, "random:p"])
    raise ValueError(f"no memory-1 table for co-player {spec!r}; known: {known}")


class TabularPolicy(Policy):
    """Plays a memory-1 table: cooperate with probability ``cooperate_prob[state]``."""

    def __init__(self, cooperate_prob: Sequence[float], name: str = "tabular") -> None:
        if len(cooperate_prob) != len(STATES):
            raise ValueError(f"need {len(STATES)} probabilities ({', '.join(STATES)}), "
                             f"got {len(cooperate_prob)}")
        if not all(0.0 <= p <= 1.0 for p in cooperate_prob):
            raise ValueError(f"probabilities must be in [0, 1], got {list(cooperate_prob)}")
        self.cooperate_prob = tuple(float(p) for p in cooperate_prob)
        self.name = name

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        return [MOVES.render(self.move(d)) for d in decisions]

    def move(self, decision: Decision) -> int:
        view = decision.game.view(decision.seat)
        if not isinstance(view, MatrixView):
            raise ValueError(f"a tabular policy plays 2x2 matrix games, not {decision.game.name!r}")
        state = joint_state(view.own[-1], view.other[-1]) if view.own else FIRST
        return COOPERATE if decision.rng.random() < self.cooperate_prob[state] else DEFECT
