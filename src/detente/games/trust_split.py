"""Trust-and-Split (TAS): talk about private hands, then split coins.

Version 1. Source: Piche et al., "Learning Robust Social Strategies with Large
Language Models", arXiv 2511.19405 (2025), the paper's new environment;
SPEC 2.3.

=================  ==========================================================
Players            2, ``n_rounds`` rounds (default 10); per round two messages
                   in turn, then simultaneous proposals
Coins              10 per round
Hands              each agent is dealt rock, paper or scissors, drawn without
                   replacement (the hands always differ) and seen only by its
                   holder. Rock beats scissors, scissors beats paper, paper
                   beats rock: the winner ("upper hand") values a coin at 10,
                   the loser at 1
Speaking order     the first speaker of round 0 is drawn at random (seat 0 or
                   1); it alternates every round. The second speaker sees the
                   first's message before writing its own
Actions            a message, free text of at most 500 characters between
                   ``<<message_start>>`` and ``<<message_end>>`` (the
                   delimiters may be left out); then ``<keep coins=N>``,
                   N in 0..10 (:class:`~detente.games.base.ProposalSpec` with
                   the single field ``coins``)
Observation        the rules once; each round the own hand and who speaks
                   first, the other's message when it arrives, the requests;
                   after each round the other's hand, who held the upper hand,
                   the other's proposal and both rewards. No round counter
Rewards            coins divided as in Split (:func:`~detente.games.split.divide`),
                   times own coin value
Reward scale c     100 (paper code, TAS)
Max welfare        100 per round (the upper hand takes all 10 coins)
=================  ==========================================================

Example rendering for the second speaker (illustrative)::

    This round your hand is rock. The other agent speaks first this round.

    The other agent says: "My hand is paper."
    Write one message to the other agent, at most 500 characters, between <<message_start>> and ...

SPEC 2.3 reference values: 7 vs 6 coins with the first agent holding the
upper hand give 53.85 / 4.62; two greedy agents (10 vs 10) get 55 per round in
total; the upper hand taking all coins gives 100.

:func:`stated_hand` is the one rule this project uses to read a hand out of a
message (scripted players and honesty statistics share it).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

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
from detente.games.split import divide, points_text

HANDS = ("rock", "paper", "scissors")
BEATS = {"rock": "scissors", "scissors": "paper", "paper": "rock"}
"""``BEATS[h]`` is the hand that ``h`` beats."""
N_COINS = 10
UPPER_VALUE, LOWER_VALUE = 10, 1

MESSAGE = MessageSpec(max_chars=500)
PROPOSAL = ProposalSpec(fields=("coins",), high=N_COINS, pieces=("<keep coins=", ">"))

_HAND_WORD = re.compile(r"\b(rock|paper|scissors)\b", re.IGNORECASE)


def beats(hand: str, other_hand: str) -> bool:
    """Whether ``hand`` wins against ``other_hand``."""
    return BEATS[hand] == other_hand


def winning_hand(hand: str) -> str:
    """The hand that beats ``hand``."""
    return next(h for h in HANDS if BEATS[h] == hand)


def stated_hand(text: str | None) -> str | None:
    """The hand a message claims: the only RPS word in it, else ``None``.

    The words ``rock``, ``paper`` and ``scissors`` are matched as whole words,
    ignoring case. A message naming exactly one distinct hand (any number of
    times) states that hand; a message naming none, or two or more different
    hands, states nothing.
    """
    if not text:
        return None
    found = {word.lower() for word in _HAND_WORD.findall(text)}
    return found.pop() if len(found) == 1 else None


def draw_hands(rng: random.Random) -> tuple[str, str]:
    """Both agents' hands for one round: two different hands, drawn without replacement."""
    first, second = rng.sample(HANDS, 2)
    return first, second


def tas_rewards(coins: tuple[int, int], hands: tuple[str, str]) -> tuple[float, float]:
    """Both agents' rewards for one round: coins received times own coin value."""
    got = divide(coins[0], coins[1], N_COINS)
    value_0 = UPPER_VALUE if beats(hands[0], hands[1]) else LOWER_VALUE
    value_1 = UPPER_VALUE if beats(hands[1], hands[0]) else LOWER_VALUE
    return got[0] * value_0, got[1] * value_1


@dataclass(frozen=True)
class TrustRound:
    """One finished round as a seat saw it, hands revealed."""

    own_hand: str
    other_hand: str
    upper: bool
    """Whether this seat held the upper hand."""
    spoke_first: bool
    own_message: str
    other_message: str
    own_coins: int
    other_coins: int
    own_reward: float
    other_reward: float


@dataclass(frozen=True)
class TrustView:
    """What a seat knows now; never the other's hand of the current round.

    ``hand`` and ``speaks_first`` are the last round's once the game is over.
    ``own_message`` / ``other_message`` are ``None`` until sent this round.
    """

    hand: str
    speaks_first: bool
    own_message: str | None
    other_message: str | None
    history: tuple[TrustRound, ...]


class TrustSplitGame(Game[Message | Proposal, TrustView]):
    """Trust-and-Split: two messages about private hands, then a coin split."""

    name = "trust_split"
    version = 1
    reward_scale = 100.0

    def __init__(self, n_rounds: int = 10) -> None:
        self.n_rounds = check_rounds(n_rounds)

    # -- state -------------------------------------------------------------
    def _start(self) -> None:
        # Everything random is drawn up front so the same seed gives the same
        # hands and speaking order whatever the players do (SPEC 3 groups).
        self.first_speaker: Seat = self.rng.randrange(2)
        self.hands = [draw_hands(self.rng) for _ in range(self.n_rounds)]
        self.phase = 0
        """0: first speaker's message, 1: second speaker's message, 2: proposals."""
        self.messages: list[list[str]] = [["", ""]]
        self.coins: list[tuple[int, int]] = []
        for seat in SEATS:
            self._tell(seat, _RULES + "\n\n" + self._round_text(seat, 0))

    def speaker(self, round_index: int) -> Seat:
        """Who speaks first in round ``round_index``."""
        return (self.first_speaker + round_index) % 2

    def pending(self) -> dict[Seat, MessageSpec | ProposalSpec]:
        if self.done:
            return {}
        first = self.speaker(self.round)
        if self.phase == 0:
            return {first: MESSAGE}
        if self.phase == 1:
            return {other(first): MESSAGE}
        return {0: PROPOSAL, 1: PROPOSAL}

    def _apply(self, actions: dict[Seat, Message | Proposal]) -> tuple[float, float] | None:
        first = self.speaker(self.round)
        if self.phase < 2:
            seat = first if self.phase == 0 else other(first)
            text = expect(Message, actions[seat]).text
            self.messages[-1][seat] = text
            heard = _heard(text)
            if self.phase == 0:
                self._tell(other(first), heard + "\n" + _MESSAGE_ASK)
            else:
                self._tell(first, heard + "\n" + _PROPOSAL_ASK)
                self._tell(other(first), _PROPOSAL_ASK)
            self.phase += 1
            return None
        coins = (expect(Proposal, actions[0]).counts[0], expect(Proposal, actions[1]).counts[0])
        self.coins.append(coins)
        hands = self.hands[self.round]
        rewards = tas_rewards(coins, hands)
        next_round = self.round + 1
        for seat in SEATS:
            report = self._report(seat, hands, coins, rewards)
            if next_round < self.n_rounds:
                self._tell(seat, report + "\n\n" + self._round_text(seat, next_round))
            else:
                self._tell(seat, report + " The game is over.")
        self.phase = 0
        if next_round < self.n_rounds:
            self.messages.append(["", ""])
        return rewards

    # -- text --------------------------------------------------------------
    def _round_text(self, seat: Seat, round_index: int) -> str:
        hand = self.hands[round_index][seat]
        if self.speaker(round_index) == seat:
            return f"This round your hand is {hand}. You speak first this round.\n{_MESSAGE_ASK}"
        return f"This round your hand is {hand}. The other agent speaks first this round."

    def _report(
        self, seat: Seat, hands: tuple[str, str], coins: tuple[int, int], rewards: tuple[float, float]
    ) -> str:
        mine, theirs = hands[seat], hands[other(seat)]
        upper = beats(mine, theirs)
        own_value, their_value = (UPPER_VALUE, LOWER_VALUE) if upper else (LOWER_VALUE, UPPER_VALUE)
        return (
            f"Last round your hand was {mine} and the other agent's hand was {theirs}: "
            f"you had the {'upper' if upper else 'lower'} hand (a coin was worth "
            f"{_points(own_value)} to you and {_points(their_value)} to the other agent).\n"
            f"The other agent proposed {PROPOSAL.render((coins[other(seat)],))}. "
            f"You received {points_text(rewards[seat])} points and the other agent received "
            f"{points_text(rewards[other(seat)])}."
        )

    # -- structured view -----------------------------------------------------
    def view(self, seat: Seat) -> TrustView:
        history = tuple(
            TrustRound(
                own_hand=hands[seat], other_hand=hands[other(seat)],
                upper=beats(hands[seat], hands[other(seat)]),
                spoke_first=self.speaker(r) == seat,
                own_message=messages[seat], other_message=messages[other(seat)],
                own_coins=coins[seat], other_coins=coins[other(seat)],
                own_reward=rewards[seat], other_reward=rewards[other(seat)],
            )
            for r, (hands, messages, coins, rewards) in enumerate(
                zip(self.hands, self.messages, self.coins, self.round_rewards, strict=False)
            )
        )
        current = min(self.round, self.n_rounds - 1)
        speaks_first = self.speaker(current) == seat
        own_message = other_message = None
        if not self.done:
            said = self.messages[-1]
            own_sent = self.phase > (0 if speaks_first else 1)
            other_sent = self.phase > (1 if speaks_first else 0)
            own_message = said[seat] if own_sent else None
            other_message = said[other(seat)] if other_sent else None
        return TrustView(
            hand=self.hands[current][seat], speaks_first=speaks_first,
            own_message=own_message, other_message=other_message, history=history,
        )

    def max_welfare(self) -> float:
        return float(N_COINS * UPPER_VALUE * len(self.coins))


_RULES = "\n".join([
    "You are playing a game with another agent, for several rounds.",
    f"In each round there are {N_COINS} coins to divide between you.",
    "Each of you is dealt a hand: rock, paper or scissors, never the same as the other's. "
    "You see only your own hand.",
    "Rock beats scissors, scissors beats paper and paper beats rock. Whoever holds the winning hand "
    f"(the upper hand) values each coin at {UPPER_VALUE} points; the other values each coin at "
    f"{LOWER_VALUE} point.",
    "First you each send the other agent one message, taking turns; who speaks first alternates "
    "from round to round.",
    f"Then you both propose at the same time how many coins you keep (0 to {N_COINS}). If the two "
    f"proposals add up to {N_COINS} or less, each of you gets what they proposed and the rest is lost;",
    "otherwise the coins are shared in proportion to the proposals (proposals of 10 and 5 give "
    "6.67 and 3.33 coins).",
    "Your points are the coins you receive times your value per coin. After each round you are told "
    "the other agent's hand and proposal.",
    "Your goal is to get as many points as you can over all rounds.",
])

_MESSAGE_ASK = (
    f"Write one message to the other agent, at most {MESSAGE.max_chars} characters, "
    f"between {MESSAGE.start} and {MESSAGE.end}."
)

_PROPOSAL_ASK = (
    f"Propose how many coins you keep: answer with <keep coins=N>, where N is a whole number "
    f"from 0 to {N_COINS}."
)


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def _heard(text: str) -> str:
    if not text:
        return "The other agent sent an empty message."
    return f'The other agent says: "{text}"'
