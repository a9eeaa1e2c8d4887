"""Behaviour figures: one definition of each, for every game (docs/evaluation.md has the details).

Per-seat figures, so a tournament can attribute them to whichever agent sat
there: each function takes ``(game, seat)`` pairs — the finished games an
agent played and the seat it held in each — and :func:`behaviour` picks the
function for the game. The trainers and the exact evaluator of memory-1
tables compute the matrix-game figures with the same definitions
(:mod:`detente.behaviour.matrix`).

Matrix games (action 0 = cooperate C, 1 = defect D; t = round):

* ``cooperation_rate``  = #C / #moves
* ``mutual_cooperation_rate`` = #(C, C) rounds / #rounds
* ``retaliation_rate``  = P(D at t | other played D at t-1)
* ``forgiveness_rate``  = P(C at t | other played C at t-1 after D at t-2)
* ``first_move_cooperation_rate`` = P(C at round 0)

Split (values are public; per item kind and round):

* ``claim_valued_more`` / ``claim_valued_less`` / ``claim_valued_equal`` =
  mean claim (0..10) on item kinds the agent values more than / less than /
  the same as the co-player

Trust-and-Split (messages labelled by :func:`detente.behaviour.honesty.classify`):

* ``truthful_rate`` / ``lie_rate`` / ``no_claim_rate`` = share of the agent's
  messages with that label; ``honesty_rate`` = truthful / (truthful + lie),
  the share of its hand claims that are true
* ``coins_upper`` / ``coins_lower`` = mean coins it proposes to keep when it
  holds the upper / lower hand
* ``punishment_rate`` = P(keeps all 10 coins at t | the other's message at
  t-1 was a lie); ``take_all_otherwise_rate`` = the same after a round where
  the other did not lie, the figure to compare it with

Deal or No Deal:

* ``agreement_rate`` = share of rounds whose claims were complementary
* ``mean_own_points`` = the agent's mean points per round

A figure with no qualifying data is ``None`` (e.g. retaliation of a player
whose partner never defected), never a made-up number. The invalid-output
rate is counted by the tournament from the decisions, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from detente.behaviour.deal import deal_behaviour
from detente.behaviour.figures import Figures, SeatGames
from detente.behaviour.matrix import matrix_behaviour
from detente.behaviour.split import split_behaviour
from detente.behaviour.trust_split import trust_behaviour
from detente.games.base import Game, Seat
from detente.games.deal import DealGame
from detente.games.ipd import MatrixGame
from detente.games.split import SplitGame
from detente.games.trust_split import TrustSplitGame

BEHAVIOUR: dict[type[Game], Callable[[SeatGames], Figures]] = {
    MatrixGame: matrix_behaviour,
    SplitGame: split_behaviour,
    TrustSplitGame: trust_behaviour,
    DealGame: deal_behaviour,
}
"""The figures of each game class."""


def behaviour(seat_games: Sequence[tuple[Game, Seat]]) -> Figures:
    """The behaviour figures of one agent over its games (all of one game); ``{}`` without games.

    Raises ``ValueError`` for games of different kinds, or of a kind without figures.
    """
    if not seat_games:
        return {}
    kinds = {type(game) for game, _ in seat_games}
    if len(kinds) > 1:
        names = sorted(k.__name__ for k in kinds)
        raise ValueError(f"behaviour figures need games of one kind, got {names}")
    (kind,) = kinds
    for cls, figures in BEHAVIOUR.items():
        if issubclass(kind, cls):
            return figures(seat_games)
    raise ValueError(f"no behaviour figures for {kind.__name__}")


__all__ = ["BEHAVIOUR", "Figures", "SeatGames", "behaviour"]
