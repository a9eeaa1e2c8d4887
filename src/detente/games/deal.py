"""Deal or No Deal (DoND): negotiate a split of a small pool with private values.

Version 1. Source: Lewis, Yarats, Dauphin, Parikh, Batra, "Deal or No Deal?
End-to-End Learning for Negotiation Dialogues", EMNLP 2017 (arXiv 1706.05125);
SPEC 2.4.

=================  ==========================================================
Players            2, ``n_rounds`` rounds (default 10, SPEC 2's default; one
                   round is one Lewis et al. dialogue, ``n_rounds=1``
                   reproduces the original single negotiation)
Pool               books, hats and balls, 1..4 of each kind and 5..7 items in
                   all, drawn anew every round
Values             private, per agent and item kind, non-negative integers
                   with the whole pool worth exactly 10 to each agent; every
                   kind is worth something to at least one agent and some kind
                   is worth something to both (the Lewis et al. constraints)
Messages           ``message_turns`` messages per agent per round (default 2),
                   alternating; the first speaker of round 0 is drawn at
                   random and it alternates every round. Free text of at most
                   500 characters between ``<<message_start>>`` and
                   ``<<message_end>>``
Action             then both state, at the same time, the counts they take:
                   ``<take books=B hats=H balls=L>``
                   (:class:`~detente.games.base.ProposalSpec`, each count in
                   ``0..max(pool)``; an item left out counts 0)
Observation        the rules once; each round the pool, own values and who
                   speaks first; each message of the other as it arrives; the
                   requests; after each round the other's claim, deal or no
                   deal, both rewards. The other's values are never shown.
                   No round counter
Rewards            if the two claims add up to the pool for every kind (they
                   are complementary), each gets the sum of its counts times
                   its own values; otherwise 0 for both
Reward scale c     10 (a whole pool is worth 10 to each agent)
Max welfare        per round, sum over kinds of count x max(v_a, v_b)
=================  ==========================================================

Example rendering of a round start (illustrative)::

    This round the pool has 1 book, 4 hats and 2 balls.
    Your values per item: book 2, hat 1, ball 2 (the whole pool is worth 10 points to you).
    You speak first this round.
    Write one message to the other agent, at most 500 characters, between <<message_start>> and ...
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import NamedTuple

from detente.games.base import (
    SEATS,
    Game,
    Message,
    MessageSpec,
    Proposal,
    ProposalSpec,
    Seat,
    check_rounds,
    expect,
    other,
)
from detente.games.split import points_text

ITEMS = ("books", "hats", "balls")
SINGULAR = ("book", "hat", "ball")
MIN_COUNT, MAX_COUNT = 1, 4
"""Range of the count of each item kind in a pool."""
MIN_ITEMS, MAX_ITEMS = 5, 7
"""Range of the total number of items in a pool."""
POOL_VALUE = 10
"""What the whole pool is worth to each agent."""

MESSAGE = MessageSpec(max_chars=500)

Counts = tuple[int, ...]
"""One count (or value) per item kind, in :data:`ITEMS` order."""


def proposal_spec(pool: Counts) -> ProposalSpec:
    """The claim request for a round with ``pool``: one count per kind, up to the largest count."""
    return ProposalSpec(fields=ITEMS, high=max(pool), pieces=("<take books=", " hats=", " balls=", ">"))


def value_vectors(pool: Counts) -> list[Counts]:
    """Every non-negative integer value vector under which ``pool`` is worth :data:`POOL_VALUE`."""
    ranges = [range(POOL_VALUE // count + 1) for count in pool]
    return [
        values for values in itertools.product(*ranges)
        if sum(c * v for c, v in zip(pool, values, strict=True)) == POOL_VALUE
    ]


def draw_round(rng: random.Random) -> tuple[Counts, tuple[Counts, Counts]]:
    """A pool and both agents' values, redrawn until they meet the Lewis et al. constraints."""
    while True:
        pool = tuple(rng.randint(MIN_COUNT, MAX_COUNT) for _ in ITEMS)
        if MIN_ITEMS <= sum(pool) <= MAX_ITEMS:
            break
    vectors = value_vectors(pool)
    while True:
        a, b = rng.choice(vectors), rng.choice(vectors)
        anyone = all(va > 0 or vb > 0 for va, vb in zip(a, b, strict=True))
        both = any(va > 0 and vb > 0 for va, vb in zip(a, b, strict=True))
        if anyone and both:
            return pool, (a, b)


def complementary(claims: tuple[Counts, Counts], pool: Counts) -> bool:
    """Whether the two claims add up to exactly the pool for every kind."""
    return all(a + b == n for a, b, n in zip(*claims, pool, strict=True))


def deal_rewards(
    claims: tuple[Counts, Counts], pool: Counts, values: tuple[Counts, Counts]
) -> tuple[float, float]:
    """Both agents' rewards: own claim times own values if the claims are complementary, else 0, 0."""
    if not complementary(claims, pool):
        return 0.0, 0.0
    return _worth(claims[0], values[0]), _worth(claims[1], values[1])


def _worth(claim: Counts, values: Counts) -> float:
    return float(sum(c * v for c, v in zip(claim, values, strict=True)))


class Line(NamedTuple):
    """One message of a round: whether this seat wrote it, and its text."""

    mine: bool
    text: str


@dataclass(frozen=True)
class DealRound:
    """One finished round as a seat saw it (the other's values stay hidden)."""

    pool: Counts
    own_values: Counts
    messages: tuple[Line, ...]
    own_claim: Counts
    other_claim: Counts
    agreed: bool
    own_reward: float
    other_reward: float


@dataclass(frozen=True)
class DealView:
    """What a seat knows: this round's pool, own values and messages so far, and the past.

    ``pool`` and ``own_values`` are the last round's once the game is over.
    """

    pool: Counts
    own_values: Counts
    speaks_first: bool
    messages: tuple[Line, ...]
    history: tuple[DealRound, ...]


class DealGame(Game[Message | Proposal, DealView]):
    """Deal or No Deal: alternate messages, then complementary claims or nothing."""

    name = "deal"
    version = 1
    reward_scale = float(POOL_VALUE)

    def __init__(self, n_rounds: int = 10, message_turns: int = 2) -> None:
        check_rounds(n_rounds)
        if message_turns < 0:
            raise ValueError(f"message_turns must be >= 0, got {message_turns}")
        self.n_rounds = n_rounds
        self.message_turns = message_turns

    # -- state -------------------------------------------------------------
    def _start(self) -> None:
        # Everything random is drawn up front (same seed, same pools, values
        # and speaking order whatever the players do).
        self.first_speaker: Seat = self.rng.randrange(2)
        drawn = [draw_round(self.rng) for _ in range(self.n_rounds)]
        self.pools = [pool for pool, _ in drawn]
        self.values = [values for _, values in drawn]
        self.specs = [proposal_spec(pool) for pool in self.pools]
        self.turn = 0
        """Messages sent so far this round."""
        self.messages: list[list[tuple[Seat, str]]] = [[]]
        self.claims: list[tuple[Counts, Counts]] = []
        for seat in SEATS:
            self._tell(seat, self._rules() + "\n\n" + self._round_text(seat, 0))

    def speaker(self, round_index: int) -> Seat:
        """Who speaks first in round ``round_index``."""
        return (self.first_speaker + round_index) % 2

    @property
    def n_messages(self) -> int:
        """Messages per round, both agents together."""
        return 2 * self.message_turns

    def pending(self) -> dict[Seat, MessageSpec | ProposalSpec]:
        if self.done:
            return {}
        if self.turn < self.n_messages:
            return {(self.speaker(self.round) + self.turn) % 2: MESSAGE}
        spec = self.specs[self.round]
        return {0: spec, 1: spec}

    def _apply(self, actions: dict[Seat, Message | Proposal]) -> tuple[float, float] | None:
        if self.turn < self.n_messages:
            (seat, action), = actions.items()
            text = expect(Message, action).text
            self.messages[-1].append((seat, text))
            self.turn += 1
            if self.turn < self.n_messages:
                self._tell(other(seat), _heard(text) + "\n" + _MESSAGE_ASK)
            else:
                self._tell(other(seat), _heard(text) + "\n" + _PROPOSAL_ASK)
                self._tell(seat, _PROPOSAL_ASK)
            return None
        claims = (expect(Proposal, actions[0]).counts, expect(Proposal, actions[1]).counts)
        self.claims.append(claims)
        pool = self.pools[self.round]
        rewards = deal_rewards(claims, pool, self.values[self.round])
        agreed = complementary(claims, pool)
        spec = self.specs[self.round]
        next_round = self.round + 1
        for seat in SEATS:
            outcome = "add up to the pool: deal" if agreed else "do not add up to the pool: no deal"
            report = (
                f"The other agent claimed {spec.render(claims[other(seat)])}. "
                f"Your claims {outcome}.\n"
                f"You received {points_text(rewards[seat])} points and the other agent received "
                f"{points_text(rewards[other(seat)])}."
            )
            if next_round < self.n_rounds:
                self._tell(seat, report + "\n\n" + self._round_text(seat, next_round))
            else:
                self._tell(seat, report + " The game is over.")
        self.turn = 0
        if next_round < self.n_rounds:
            self.messages.append([])
        return rewards

    # -- text --------------------------------------------------------------
    def _rules(self) -> str:
        if self.message_turns == 0:
            talk = "There is no talking: you both go straight to stating what you take."
        else:
            plural = "message" if self.message_turns == 1 else "messages"
            talk = (
                f"First you talk: each of you sends {self.message_turns} {plural} to the other, taking "
                "turns; who speaks first alternates from round to round."
            )
        return "\n".join([
            "You are negotiating with another agent, for several rounds.",
            "In each round there is a pool of books, hats and balls to divide between you.",
            "Each of you has private values for the items, in whole points per item; you do not see the "
            f"other agent's values. For each of you the whole pool is worth {POOL_VALUE} points.",
            talk,
            "Then you both state at the same time how many of each item you take.",
            "If your two claims together are exactly the pool, each of you gets the points of the items "
            "they took. Otherwise there is no deal and both of you get 0 points.",
            "Your goal is to get as many points as you can over all rounds.",
        ])

    def _round_text(self, seat: Seat, round_index: int) -> str:
        pool, values = self.pools[round_index], self.values[round_index][seat]
        counts = [f"{n} {SINGULAR[i] if n == 1 else ITEMS[i]}" for i, n in enumerate(pool)]
        own = ", ".join(f"{name} {v}" for name, v in zip(SINGULAR, values, strict=True))
        text = (
            f"This round the pool has {counts[0]}, {counts[1]} and {counts[2]}.\n"
            f"Your values per item: {own} (the whole pool is worth {POOL_VALUE} points to you)."
        )
        if self.message_turns == 0:
            return text + "\n" + _PROPOSAL_ASK
        if self.speaker(round_index) == seat:
            return text + "\nYou speak first this round.\n" + _MESSAGE_ASK
        return text + "\nThe other agent speaks first this round."

    # -- structured view -----------------------------------------------------
    def view(self, seat: Seat) -> DealView:
        history = tuple(
            DealRound(
                pool=pool, own_values=values[seat],
                messages=tuple(Line(s == seat, text) for s, text in said),
                own_claim=claims[seat], other_claim=claims[other(seat)],
                agreed=complementary(claims, pool),
                own_reward=rewards[seat], other_reward=rewards[other(seat)],
            )
            for pool, values, said, claims, rewards in zip(
                self.pools, self.values, self.messages, self.claims, self.round_rewards, strict=False
            )
        )
        current = min(self.round, self.n_rounds - 1)
        said = () if self.done else tuple(Line(s == seat, text) for s, text in self.messages[-1])
        return DealView(
            pool=self.pools[current], own_values=self.values[current][seat],
            speaks_first=self.speaker(current) == seat, messages=said, history=history,
        )

    def max_welfare(self) -> float:
        return float(sum(
            n * max(va, vb)
            for pool, (a, b) in zip(self.pools[: len(self.claims)], self.values, strict=False)
            for n, va, vb in zip(pool, a, b, strict=True)
        ))


_MESSAGE_ASK = (
    f"Write one message to the other agent, at most {MESSAGE.max_chars} characters, "
    f"between {MESSAGE.start} and {MESSAGE.end}."
)

_PROPOSAL_ASK = (
    "State how many of each item you take: answer with <take books=B hats=H balls=L>, "
    "where B, H and L are whole numbers, at most the counts in the pool."
)


def _heard(text: str) -> str:
    if not text:
        return "The other agent sent an empty message."
    return f'The other agent says: "{text}"'
