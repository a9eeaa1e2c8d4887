"""Scripted strategies for Trust-and-Split (SPEC 2.3).

Messages are read with :func:`~detente.games.trust_split.stated_hand`: a
message states a hand when it names exactly one of rock, paper, scissors.
A *lie* is a message stating a hand other than the one revealed after the
round (or, seen at once, the listener's own hand, since hands always differ).
"""

from __future__ import annotations

import random

from detente.games.base import ActionSpec, MessageSpec
from detente.games.trust_split import (
    BEATS,
    N_COINS,
    PROPOSAL,
    TrustSplitGame,
    TrustView,
    beats,
    stated_hand,
    winning_hand,
)
from detente.policies.scripted.base import Scripted


class TrustStrategy(Scripted[TrustView]):
    game_type = TrustSplitGame

    def respond(self, view: TrustView, spec: ActionSpec, rng: random.Random) -> str:
        if isinstance(spec, MessageSpec):
            return spec.render(self.message(view))
        return PROPOSAL.render((self.coins(view),))

    def message(self, view: TrustView) -> str:
        """This round's message (without delimiters)."""
        raise NotImplementedError

    def coins(self, view: TrustView) -> int:
        """How many of the 10 coins to keep."""
        raise NotImplementedError


class GreedyTrust(TrustStrategy):
    """Keeps all 10 coins and says so, naming no hand.

    Names: greedy (SPEC 2.3: two greedy agents split 5/5, 55 per round in
    total; arXiv 2511.19405). Its message, "I will keep all the coins.",
    states nothing about its hand.
    """

    short_name = "greedy"
    memory_depth = 0

    def message(self, view: TrustView) -> str:
        return "I will keep all the coins."

    def coins(self, view: TrustView) -> int:
        return N_COINS


class TruthfulReciprocator(TrustStrategy):
    """States its true hand; takes 10 when upper, 0 when lower, 10 forever after a detected lie.

    Names: truthful-reciprocator (arXiv 2511.19405, TAS baselines). Upper or
    lower is judged from the hand the other's message states this round
    (:func:`~detente.games.trust_split.stated_hand`). It keeps all 10 coins
    when the other stated no hand, stated its own hand (hands always differ:
    a lie seen at once), or lied in any earlier round (a stated hand that
    differs from the hand revealed after that round).
    """

    short_name = "truthful"
    memory_depth = float("inf")

    def message(self, view: TrustView) -> str:
        return f"My hand is {view.hand}."

    def coins(self, view: TrustView) -> int:
        # A detected lie in any past round: never trust again.
        for past in view.history:
            said = stated_hand(past.other_message)
            if said is not None and said != past.other_hand:
                return N_COINS
        claimed = stated_hand(view.other_message)
        # No claim to trust, or a claim that cannot be true: keep everything.
        if claimed is None or claimed == view.hand:
            return N_COINS
        # Trust the claim: the upper hand takes all, the lower hand nothing.
        return N_COINS if beats(view.hand, claimed) else 0


class Liar(TrustStrategy):
    """Always claims a hand that would make it upper, and keeps all 10 coins.

    Names: liar (arXiv 2511.19405, TAS exploiter). Speaking second after a
    stated hand ``X``, it claims the hand that beats ``X``. Otherwise
    (speaking first, or the other stated nothing) it claims the hand its own
    hand beats: whenever it truly holds the lower hand, that claim beats the
    other's real hand, so a believing listener gives up every coin; when it
    truly holds the upper hand the claim names the other's own hand.
    """

    short_name = "liar"
    memory_depth = 0

    def message(self, view: TrustView) -> str:
        claimed = stated_hand(view.other_message)
        lie = winning_hand(claimed) if claimed is not None else BEATS[view.hand]
        return f"My hand is {lie}."

    def coins(self, view: TrustView) -> int:
        return N_COINS


STRATEGIES: tuple[type[TrustStrategy], ...] = (GreedyTrust, TruthfulReciprocator, Liar)
