"""Split: how much an agent claims of the items it values more, less, or the same as its co-player."""

from __future__ import annotations

from dataclasses import dataclass, field

from detente.behaviour.figures import Accumulated, Figures, Mean, SeatGames
from detente.games.split import SplitGame


@dataclass
class SplitBehaviour(Accumulated):
    claim_valued_more: Mean = field(default_factory=Mean)
    """Mean claim (0..10) on item kinds the agent values more than the co-player does."""
    claim_valued_less: Mean = field(default_factory=Mean)
    claim_valued_equal: Mean = field(default_factory=Mean)


def split_behaviour(seat_games: SeatGames) -> Figures:
    """Mean claims of the player in ``seat`` by how it values each item kind against the co-player."""
    stats = SplitBehaviour()
    for game, seat in seat_games:
        if not isinstance(game, SplitGame):
            raise TypeError(f"split_behaviour needs Split games, got {type(game).__name__}")
        for r in game.view(seat).history:
            for own_value, other_value, claim in zip(r.own_values, r.other_values, r.own_claim, strict=True):
                if own_value > other_value:
                    stats.claim_valued_more.add(claim)
                elif own_value < other_value:
                    stats.claim_valued_less.add(claim)
                else:
                    stats.claim_valued_equal.add(claim)
    return stats.figures()
