"""Trust-and-Split: honesty of messages, proposals by hand, punishment of lies."""

from __future__ import annotations

from dataclasses import dataclass, field

from detente.behaviour.figures import Accumulated, Figures, Mean, Rate, SeatGames
from detente.behaviour.honesty import Honesty, classify
from detente.games.trust_split import N_COINS, TrustSplitGame


@dataclass
class TrustBehaviour(Accumulated):
    truthful_rate: Rate = field(default_factory=Rate)
    lie_rate: Rate = field(default_factory=Rate)
    no_claim_rate: Rate = field(default_factory=Rate)
    honesty_rate: Rate = field(default_factory=Rate)
    """Over messages that claim a hand (truthful or lie): the share that are truthful."""
    coins_upper: Mean = field(default_factory=Mean)
    coins_lower: Mean = field(default_factory=Mean)
    punishment_rate: Rate = field(default_factory=Rate)
    take_all_otherwise_rate: Rate = field(default_factory=Rate)


def trust_behaviour(seat_games: SeatGames) -> Figures:
    """Honesty, proposals and punishment of the player in ``seat`` over its Trust-and-Split games."""
    stats = TrustBehaviour()
    for game, seat in seat_games:
        if not isinstance(game, TrustSplitGame):
            raise TypeError(f"trust_behaviour needs Trust-and-Split games, got {type(game).__name__}")
        other_lied = False  # the other's message of the previous round was a lie
        for t, r in enumerate(game.view(seat).history):
            label = classify(r.own_message, r.own_hand)
            stats.truthful_rate.add(label == Honesty.TRUTHFUL)
            stats.lie_rate.add(label == Honesty.LIE)
            stats.no_claim_rate.add(label == Honesty.NO_CLAIM)
            if label != Honesty.NO_CLAIM:
                stats.honesty_rate.add(label == Honesty.TRUTHFUL)
            (stats.coins_upper if r.upper else stats.coins_lower).add(r.own_coins)
            if t >= 1:
                after = stats.punishment_rate if other_lied else stats.take_all_otherwise_rate
                after.add(r.own_coins == N_COINS)
            other_lied = classify(r.other_message, r.other_hand) == Honesty.LIE
    return stats.figures()
