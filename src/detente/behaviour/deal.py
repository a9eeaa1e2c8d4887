"""Deal or No Deal: how often the two splits were complementary, and the agent's points."""

from __future__ import annotations

from dataclasses import dataclass, field

from detente.behaviour.figures import Accumulated, Figures, Mean, Rate, SeatGames
from detente.games.deal import DealGame


@dataclass
class DealBehaviour(Accumulated):
    agreement_rate: Rate = field(default_factory=Rate)
    mean_own_points: Mean = field(default_factory=Mean)


def deal_behaviour(seat_games: SeatGames) -> Figures:
    """Agreement rate and mean points per round of the player in ``seat``."""
    stats = DealBehaviour()
    for game, seat in seat_games:
        if not isinstance(game, DealGame):
            raise TypeError(f"deal_behaviour needs Deal or No Deal games, got {type(game).__name__}")
        for r in game.view(seat).history:
            stats.agreement_rate.add(r.agreed)
            stats.mean_own_points.add(r.own_reward)
    return stats.figures()
