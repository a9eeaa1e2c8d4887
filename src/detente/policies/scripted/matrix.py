"""Classic strategies for the iterated prisoner's dilemma and other 2x2 games.

Action 0 (``<A>``) is cooperation, action 1 (``<B>``) defection. Names and
rules follow Axelrod's tournaments (Axelrod, "The Evolution of Cooperation",
1984) and the Axelrod Python library's naming.
"""

from __future__ import annotations

import random
from typing import ClassVar

from detente.games.base import ActionSpec
from detente.games.ipd import COOPERATE as C
from detente.games.ipd import DEFECT as D
from detente.games.ipd import MOVES, MatrixGame, MatrixView
from detente.policies.scripted.base import Scripted


class MatrixStrategy(Scripted[MatrixView]):
    game_type = MatrixGame

    def respond(self, view: MatrixView, spec: ActionSpec, rng: random.Random) -> str:
        return MOVES.render(self.move(view, rng))

    def move(self, view: MatrixView, rng: random.Random) -> int:
        raise NotImplementedError


class AlwaysCooperate(MatrixStrategy):
    """Cooperates every round. Names: Cooperator (Axelrod 1984)."""

    short_name = "allc"
    memory_depth = 0

    def move(self, view: MatrixView, rng: random.Random) -> int:
        return C


class AlwaysDefect(MatrixStrategy):
    """Defects every round. Names: Defector (Axelrod 1984)."""

    short_name = "alld"
    memory_depth = 0

    def move(self, view: MatrixView, rng: random.Random) -> int:
        return D


class TitForTat(MatrixStrategy):
    """Cooperates first, then repeats the other's last move. Names: TFT (Axelrod 1984)."""

    short_name = "tft"
    memory_depth = 1

    def move(self, view: MatrixView, rng: random.Random) -> int:
        if not view.other:
            return C
        return view.other[-1]


class SuspiciousTitForTat(MatrixStrategy):
    """Defects first, then repeats the other's last move. Names: STFT (Beaufils et al. 1997)."""

    short_name = "stft"
    memory_depth = 1

    def move(self, view: MatrixView, rng: random.Random) -> int:
        if not view.other:
            return D
        return view.other[-1]


class GenerousTitForTat(MatrixStrategy):
    """Tit-for-tat that forgives a defection with probability ``forgive``.

    Names: GTFT (Nowak and Sigmund 1992). The default 1/3 is
    min(1 - (T-R)/(R-S), (R-P)/(T-P)) for the IPD payoffs R=3, S=0, T=5, P=1.
    """

    short_name = "gtft"
    memory_depth = 1
    stochastic = True
    forgive: ClassVar[float] = 1 / 3

    def move(self, view: MatrixView, rng: random.Random) -> int:
        if not view.other or view.other[-1] == C:
            return C
        return C if rng.random() < self.forgive else D


class GrimTrigger(MatrixStrategy):
    """Cooperates until the other defects once, then defects forever. Names: Grudger (Axelrod 1984)."""

    short_name = "grim"
    memory_depth = float("inf")

    def move(self, view: MatrixView, rng: random.Random) -> int:
        return D if D in view.other else C


class WinStayLoseShift(MatrixStrategy):
    """Repeats its move after the other cooperated, switches after the other defected.

    Names: Pavlov, WSLS (Nowak and Sigmund 1993). Equivalently: cooperate
    iff both played the same move last round.
    """

    short_name = "wsls"
    memory_depth = 1

    def move(self, view: MatrixView, rng: random.Random) -> int:
        if not view.own:
            return C
        return C if view.own[-1] == view.other[-1] else D


class RandomMove(MatrixStrategy):
    """Cooperates with probability ``p`` each round, independently. Names: Random (Axelrod 1984)."""

    short_name = "random"
    memory_depth = 0
    stochastic = True

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random(p) needs p in [0, 1], got {p}")
        super().__init__()
        self.p = p
        self.name = f"random:{p:g}"

    def move(self, view: MatrixView, rng: random.Random) -> int:
        return C if rng.random() < self.p else D


STRATEGIES: tuple[type[MatrixStrategy], ...] = (
    AlwaysCooperate, AlwaysDefect, TitForTat, SuspiciousTitForTat,
    GenerousTitForTat, GrimTrigger, WinStayLoseShift, RandomMove,
)
