"""Scripted strategies for Deal or No Deal (SPEC 2.4).

Both strategies say what they plan to take, as ``I take books=B hats=H
balls=L.`` (text that :func:`~detente.games.base.parse_action` reads as a
claim), and finally claim their plan as it stands after the last message
they heard. They look only at the current round.
"""

from __future__ import annotations

import itertools
import random

from detente.games.base import ActionSpec, MessageSpec, Proposal, ProposalSpec, parse_action
from detente.games.deal import ITEMS, POOL_VALUE, Counts, DealGame, DealView, proposal_spec
from detente.policies.scripted.base import Scripted


def worth(claim: Counts, values: Counts) -> int:
    """Points ``claim`` gives its taker under ``values``."""
    return sum(c * v for c, v in zip(claim, values, strict=True))


class DealStrategy(Scripted[DealView]):
    game_type = DealGame
    memory_depth = 0

    def respond(self, view: DealView, spec: ActionSpec, rng: random.Random) -> str:
        plan = self.plan(view)
        if isinstance(spec, MessageSpec):
            counts = " ".join(f"{item}={count}" for item, count in zip(ITEMS, plan, strict=True))
            return spec.render(f"I take {counts}.")
        if isinstance(spec, ProposalSpec):
            return spec.render(plan)
        raise TypeError(f"a Deal strategy writes messages and claims, not {spec!r}")

    def plan(self, view: DealView) -> Counts:
        """The counts (books, hats, balls) to take this round."""
        raise NotImplementedError


class GreedyDeal(DealStrategy):
    """Claims the whole pool. Names: greedy (SPEC 4 exploitability opponent)."""

    short_name = "greedy"

    def plan(self, view: DealView) -> Counts:
        return view.pool


class FairDeal(DealStrategy):
    """Asks for about half of its own value; accepts any offer leaving it at least as much.

    Names: fair splitter (equal split of own value; Lewis et al. 2017 setting).
    Its own split is the claim whose value to it is closest to half the pool
    (5 of 10), ties going to the higher value (so it never settles for
    nothing when 0 and 10 are equally far from half), then to fewer items,
    then to the smallest counts in books-hats-balls order. If the other's latest
    message states a claim (``books=.. hats=.. balls=..``) that fits in the
    pool and leaves it a complement worth at least its own split's value, it
    takes that complement instead (accepting the offer); otherwise it keeps
    its own split.
    """

    short_name = "fair"

    def plan(self, view: DealView) -> Counts:
        own = half_split(view.pool, view.own_values)
        heard = [line.text for line in view.messages if not line.mine]
        if heard:
            offer = parse_action(proposal_spec(view.pool), heard[-1])
            if isinstance(offer, Proposal) and all(
                c <= n for c, n in zip(offer.counts, view.pool, strict=True)
            ):
                rest = tuple(n - c for c, n in zip(offer.counts, view.pool, strict=True))
                if worth(rest, view.own_values) >= worth(own, view.own_values):
                    return rest
        return own


def half_split(pool: Counts, values: Counts) -> Counts:
    """The claim worth closest to half the pool to its taker (ties: higher value, fewer items, smaller)."""
    claims = itertools.product(*(range(n + 1) for n in pool))
    return min(
        claims,
        key=lambda c: (abs(2 * worth(c, values) - POOL_VALUE), -worth(c, values), sum(c), c),
    )


STRATEGIES: tuple[type[DealStrategy], ...] = (GreedyDeal, FairDeal)
