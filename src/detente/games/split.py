"""Split without communication ("Split"): a no-press negotiation over three items.

Version 1. Source: Piche et al., "Learning Robust Social Strategies with Large
Language Models", arXiv 2511.19405 (2025), the no-communication split game;
SPEC 2.2.

=================  ==========================================================
Players            2, simultaneous proposals, ``n_rounds`` rounds (default 10),
                   no messages
Items              10 hats, 10 books, 10 balls every round
Values             per agent and item, 1 or 10, drawn independently and redrawn
                   until the two agents value at least one item differently
                   and both value totals are equal; public to both agents
Action             ``<keep hats=H books=B balls=L>``, integers 0..10; an item
                   left out counts 0 (:class:`~detente.games.base.ProposalSpec`
                   with fields ``hats``, ``books``, ``balls``)
Observation        the rules once; each round both agents' values and the
                   request; after each round the other's proposal and both
                   rewards. No round counter
Rewards            per item: claims summing to <= 10 are granted (the rest is
                   lost), otherwise item ``i`` is shared as
                   ``claim_i * 10 / (claim_a + claim_b)``; reward = sum over
                   items of quantity received x own value
Reward scale c     100 (paper code, Split)
Max welfare        per round, sum over items of 10 x max(v_a, v_b)
=================  ==========================================================

Example rendering seen by an agent (values and numbers are illustrative)::

    This round your values are: hats 10, books 10, balls 1.
    The other agent's values are: hats 10, books 1, balls 10.
    Propose how many of each item you keep: answer with <keep hats=H books=B balls=L>, ...

    Last round the other agent proposed <keep hats=5 books=0 balls=10>.
    You received 171.67 points and the other agent received 83.33.

SPEC 2.2 reference value: claims (10,10,10) vs (5,0,10) with values
A=(10,10,1), B=(10,1,10) give 171.67 / 83.33.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from detente.games.base import SEATS, Game, Proposal, ProposalSpec, Seat, check_rounds, other

ITEMS = ("hats", "books", "balls")
N_EACH = 10
"""Count of every item kind per round."""
VALUE_CHOICES = (1, 10)

PROPOSAL = ProposalSpec(
    fields=ITEMS,
    high=N_EACH,
    pieces=("<keep hats=", " books=", " balls=", ">"),
)

Values = tuple[int, ...]
"""One agent's value per item, in :data:`ITEMS` order."""


def divide(claim_a: int, claim_b: int, total: int) -> tuple[float, float]:
    """Quantities received when two agents claim ``claim_a`` and ``claim_b`` of ``total`` units.

    Claims that fit (sum <= total) are granted and the rest is lost; otherwise
    the units are shared in proportion to the claims (SPEC 2.2, 2.3).
    """
    if claim_a + claim_b <= total:
        return float(claim_a), float(claim_b)
    share = total / (claim_a + claim_b)
    return claim_a * share, claim_b * share


def split_rewards(
    claims: tuple[tuple[int, ...], tuple[int, ...]],
    values: tuple[Values, Values],
    total: int = N_EACH,
) -> tuple[float, float]:
    """Both agents' rewards for one round: per item :func:`divide`, times own value, summed."""
    reward_a = reward_b = 0.0
    for claim_a, claim_b, value_a, value_b in zip(*claims, *values, strict=True):
        got_a, got_b = divide(claim_a, claim_b, total)
        reward_a += got_a * value_a
        reward_b += got_b * value_b
    return reward_a, reward_b


def draw_values(rng: random.Random) -> tuple[Values, Values]:
    """Both agents' values for one round (SPEC 2.2).

    Each value is drawn from ``{1, 10}``; the pair is redrawn until the agents
    disagree on at least one item and have equal totals.
    """
    while True:
        a = tuple(rng.choice(VALUE_CHOICES) for _ in ITEMS)
        b = tuple(rng.choice(VALUE_CHOICES) for _ in ITEMS)
        if a != b and sum(a) == sum(b):
            return a, b


@dataclass(frozen=True)
class SplitRound:
    """One finished round as a seat saw it; claims in :data:`ITEMS` order."""

    own_values: Values
    other_values: Values
    own_claim: tuple[int, ...]
    other_claim: tuple[int, ...]
    own_reward: float
    other_reward: float


@dataclass(frozen=True)
class SplitView:
    """What a seat knows: this round's values (the last round's once the game is over) and the past."""

    own_values: Values
    other_values: Values
    history: tuple[SplitRound, ...]


class SplitGame(Game[Proposal, SplitView]):
    """Split without communication: simultaneous proposals over public values."""

    name = "split"
    version = 1
    reward_scale = 100.0

    def __init__(self, n_rounds: int = 10) -> None:
        self.n_rounds = check_rounds(n_rounds)

    def _start(self) -> None:
        # All rounds' values are drawn up front, so the same seed gives the
        # same values whatever the players do (common random numbers, SPEC 3).
        self.values = [draw_values(self.rng) for _ in range(self.n_rounds)]
        self.claims: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        for seat in SEATS:
            self._tell(seat, _RULES + "\n\n" + self._round_text(seat, 0))

    def _round_text(self, seat: Seat, round_index: int) -> str:
        own, theirs = self.values[round_index][seat], self.values[round_index][other(seat)]
        return (
            f"This round your values are: {_values_text(own)}.\n"
            f"The other agent's values are: {_values_text(theirs)}.\n{_ASK}"
        )

    def pending(self) -> dict[Seat, ProposalSpec]:
        return {} if self.done else {0: PROPOSAL, 1: PROPOSAL}

    def _apply(self, actions: dict[Seat, Proposal]) -> tuple[float, float]:
        claims = (actions[0].counts, actions[1].counts)
        self.claims.append(claims)
        rewards = split_rewards(claims, self.values[self.round])
        next_round = self.round + 1
        for seat in SEATS:
            report = (
                f"Last round the other agent proposed {PROPOSAL.render(claims[other(seat)])}.\n"
                f"You received {points_text(rewards[seat])} points and the other agent received "
                f"{points_text(rewards[other(seat)])}."
            )
            if next_round < self.n_rounds:
                self._tell(seat, report + "\n\n" + self._round_text(seat, next_round))
            else:
                self._tell(seat, report + " The game is over.")
        return rewards

    def view(self, seat: Seat) -> SplitView:
        current = self.values[min(self.round, self.n_rounds - 1)]
        history = tuple(
            SplitRound(
                own_values=values[seat], other_values=values[other(seat)],
                own_claim=claims[seat], other_claim=claims[other(seat)],
                own_reward=rewards[seat], other_reward=rewards[other(seat)],
            )
            for values, claims, rewards in zip(self.values, self.claims, self.round_rewards, strict=False)
        )
        return SplitView(own_values=current[seat], other_values=current[other(seat)], history=history)

    def max_welfare(self) -> float:
        return float(sum(
            N_EACH * max(va, vb)
            for a, b in self.values[: len(self.claims)]
            for va, vb in zip(a, b, strict=True)
        ))


_RULES = "\n".join([
    "You are playing a game with another agent, for several rounds.",
    f"In each round there are {N_EACH} hats, {N_EACH} books and {N_EACH} balls to divide between you.",
    "Each of you values each kind of item at 1 or 10 points per item; you both see both agents' values.",
    f"You both propose at the same time how many of each item you keep (0 to {N_EACH}).",
    f"For each item: if your two claims add up to {N_EACH} or less, each of you gets what they claimed "
    "and the rest is lost;",
    f"otherwise the {N_EACH} items are shared in proportion to the claims "
    "(claims of 10 and 5 give 6.67 and 3.33).",
    "Your points are the sum over items of the quantity you receive times your value for it.",
    "Your goal is to get as many points as you can over all rounds.",
])

_ASK = (
    "Propose how many of each item you keep: answer with <keep hats=H books=B balls=L>, "
    f"where H, B and L are whole numbers from 0 to {N_EACH}."
)


def _values_text(values: Values) -> str:
    return ", ".join(f"{item} {value}" for item, value in zip(ITEMS, values, strict=True))


def points_text(x: float) -> str:
    """A reward as people write it: at most two decimals, no trailing zeros."""
    return f"{x:.2f}".rstrip("0").rstrip(".")
