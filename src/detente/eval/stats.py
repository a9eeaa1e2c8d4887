"""Behaviour statistics computed from finished episodes.

Per-seat figures, so a tournament can attribute them to whichever agent sat
there. Matrix games (action 0 = cooperate, 1 = defect):

* cooperation rate  = #C / #moves
* retaliation rate  = P(D at round t | other played D at round t-1)
* forgiveness rate  = P(C at round t | other played C at t-1 after D at t-2)

A rate with no qualifying rounds is ``None`` (e.g. retaliation of a player
whose partner never defected), never a made-up number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from detente.games.base import Seat, other
from detente.games.ipd import COOPERATE, DEFECT, MatrixGame


@dataclass
class Counter:
    """A rate accumulated as hits / trials."""

    hits: int = 0
    trials: int = 0

    def add(self, hit: bool) -> None:
        self.hits += int(hit)
        self.trials += 1

    @property
    def rate(self) -> float | None:
        return self.hits / self.trials if self.trials else None


@dataclass
class MatrixBehaviour:
    cooperation: Counter
    retaliation: Counter
    forgiveness: Counter

    def as_dict(self) -> dict[str, float | None]:
        return {
            "cooperation_rate": self.cooperation.rate,
            "retaliation_rate": self.retaliation.rate,
            "forgiveness_rate": self.forgiveness.rate,
        }


def matrix_behaviour(seat_games: Iterable[tuple[MatrixGame, Seat]]) -> MatrixBehaviour:
    """Accumulate the behaviour of the player in ``seat`` over its games."""
    stats = MatrixBehaviour(Counter(), Counter(), Counter())
    for game, seat in seat_games:
        own = [m[seat] for m in game.moves]
        theirs = [m[other(seat)] for m in game.moves]
        for t, move in enumerate(own):
            stats.cooperation.add(move == COOPERATE)
            if t >= 1 and theirs[t - 1] == DEFECT:
                stats.retaliation.add(move == DEFECT)
            if t >= 2 and theirs[t - 2] == DEFECT and theirs[t - 1] == COOPERATE:
                stats.forgiveness.add(move == COOPERATE)
    return stats
