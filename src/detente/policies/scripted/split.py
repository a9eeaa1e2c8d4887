"""Scripted strategies for Split (no-press negotiation, SPEC 2.2).

Each strategy reads the round's public values from the
:class:`~detente.games.split.SplitView` and answers with the canonical
``<keep hats=H books=B balls=L>``. None looks at past rounds.
"""

from __future__ import annotations

import random

from detente.games.base import ActionSpec
from detente.games.split import N_EACH, PROPOSAL, SplitGame, SplitView
from detente.policies.scripted.base import Scripted


class SplitStrategy(Scripted[SplitView]):
    game_type = SplitGame
    memory_depth = 0

    def respond(self, view: SplitView, spec: ActionSpec, rng: random.Random) -> str:
        return PROPOSAL.render(self.claim(view))

    def claim(self, view: SplitView) -> tuple[int, ...]:
        """How many of each item (hats, books, balls) to keep this round."""
        raise NotImplementedError


class GreedySplit(SplitStrategy):
    """Keeps all 10 of every item. Names: greedy (SPEC 4 exploitability opponent, arXiv 2511.19405)."""

    short_name = "greedy"

    def claim(self, view: SplitView) -> tuple[int, ...]:
        return (N_EACH,) * len(view.own_values)


class WelfareSplit(SplitStrategy):
    """Claims every item it values more, none it values less, half on ties.

    Names: utilitarian / welfare-maximising allocation (SPEC 2.2 max welfare).
    Two welfare players reach the best collective total of every round.
    """

    short_name = "welfare"

    def claim(self, view: SplitView) -> tuple[int, ...]:
        return tuple(
            N_EACH if own > theirs else 0 if own < theirs else N_EACH // 2
            for own, theirs in zip(view.own_values, view.other_values, strict=True)
        )


class FairSplit(SplitStrategy):
    """Keeps half (5) of every item. Names: equal split (Nash bargaining with symmetric values)."""

    short_name = "fair"

    def claim(self, view: SplitView) -> tuple[int, ...]:
        return (N_EACH // 2,) * len(view.own_values)


STRATEGIES: tuple[type[SplitStrategy], ...] = (GreedySplit, WelfareSplit, FairSplit)
