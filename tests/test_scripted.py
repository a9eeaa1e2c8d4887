"""Scripted strategies, Axelrod ``versus_test`` style.

Each IPD strategy: its first move, its replies to the four memory-one
histories, and the exact joint actions against a fixed partner (a mismatch
names the round). The Split, Trust-and-Split and Deal strategies: the key
behaviour each one is documented to have.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from detente.games import make_game
from detente.games.base import Proposal, parse_action
from detente.games.deal import DealGame, DealView, Line, complementary
from detente.games.ipd import MOVES, MatrixGame, MatrixView
from detente.games.split import PROPOSAL as SPLIT_PROPOSAL
from detente.games.split import SplitGame, SplitView
from detente.games.trust_split import PROPOSAL, TrustSplitGame, TrustView, beats, stated_hand
from detente.policies.base import Decision, Policy
from detente.policies.scripted import make_scripted
from detente.policies.scripted.deal import half_split, worth
from detente.rollout.play import play

C, D = 0, 1
LETTER = "CD"


class MockPlayer(Policy):
    """Plays a fixed cycle of moves, e.g. ``"CCD"`` (Axelrod's MockPlayer)."""

    def __init__(self, moves: str) -> None:
        self.moves = moves
        self.name = f"mock:{moves}"

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        replies = []
        for d in decisions:
            turn = len(d.game.view(d.seat).own)
            replies.append(MOVES.render(LETTER.index(self.moves[turn % len(self.moves)])))
        return replies


class FixedRandom(random.Random):
    """A random stream whose ``random()`` always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def versus_test(player: str, partner: str, expected: list[str], seed: int = 0) -> None:
    """Play ``player`` (seat 0) against ``partner`` moves; ``expected[i]`` = own + other move of round i."""
    game = MatrixGame(n_rounds=len(expected))
    play([game], [(make_scripted(player, game), MockPlayer(partner))], [seed])
    view = game.view(0)
    got = [LETTER[own] + LETTER[other] for own, other in zip(view.own, view.other, strict=True)]
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"{player} vs {partner}, round {i}: expected {want}, got {have}; all: {got}"


# --------------------------------------------------------------------------
# IPD zoo
# --------------------------------------------------------------------------
#: first move, then replies to last round (own, other) = CC, CD, DC, DD
MEMORY_ONE = {
    "allc": ("C", "CCCC"),
    "alld": ("D", "DDDD"),
    "tft": ("C", "CDCD"),
    "stft": ("D", "CDCD"),
    "grim": ("C", "CDCD"),
    "wsls": ("C", "CDDC"),
}


@pytest.mark.parametrize("name", sorted(MEMORY_ONE))
def test_first_move_and_memory_one_replies(name: str) -> None:
    strategy = make_scripted(name, MatrixGame())
    first, replies = MEMORY_ONE[name]
    rng = random.Random(0)
    assert LETTER[strategy.move(MatrixView((), ()), rng)] == first
    for (own, other), want in zip([(C, C), (C, D), (D, C), (D, D)], replies, strict=True):
        got = LETTER[strategy.move(MatrixView((own,), (other,)), rng)]
        assert got == want, f"{name} after {LETTER[own]}{LETTER[other]}: expected {want}, got {got}"


@pytest.mark.parametrize(("player", "partner", "expected"), [
    ("tft", "CCD", ["CC", "CC", "CD", "DC", "CC", "CD", "DC"]),
    ("tft", "D", ["CD", "DD", "DD", "DD"]),
    ("stft", "C", ["DC", "CC", "CC", "CC"]),
    ("grim", "CCDC", ["CC", "CC", "CD", "DC", "DC", "DC", "DD", "DC"]),
    ("wsls", "D", ["CD", "DD", "CD", "DD", "CD"]),
    ("wsls", "CD", ["CC", "CD", "DC", "DD", "CC", "CD"]),
    ("allc", "DC", ["CD", "CC", "CD", "CC"]),
    ("alld", "C", ["DC", "DC", "DC"]),
])
def test_versus_fixed_partner(player: str, partner: str, expected: list[str]) -> None:
    versus_test(player, partner, expected)


def test_generous_tft_forgives_with_its_probability() -> None:
    gtft = make_scripted("gtft", MatrixGame())
    after_defection = MatrixView((C,), (D,))
    assert gtft.move(after_defection, FixedRandom(0.0)) == C
    assert gtft.move(after_defection, FixedRandom(0.34)) == D
    assert gtft.move(MatrixView((C,), (C,)), FixedRandom(0.99)) == C
    rng = random.Random(1)
    forgiven = sum(gtft.move(after_defection, rng) == C for _ in range(3000)) / 3000
    assert abs(forgiven - 1 / 3) < 0.04


@pytest.mark.parametrize(("p", "letter"), [(1.0, "C"), (0.0, "D")])
def test_random_with_extreme_probability_is_constant(p: float, letter: str) -> None:
    versus_test(f"random:{p}", "CD", [letter + "C", letter + "D"] * 3)


def test_random_parameter_is_checked() -> None:
    assert make_scripted("random:0.3", MatrixGame()).p == 0.3
    with pytest.raises(ValueError):
        make_scripted("random:1.5", MatrixGame())


# --------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------
def split_claim(name: str, own: tuple[int, ...], other: tuple[int, ...]) -> Proposal:
    game = SplitGame()
    raw = make_scripted(name, game).respond(SplitView(own, other, ()), SPLIT_PROPOSAL, random.Random(0))
    result = parse_action(SPLIT_PROPOSAL, raw)
    assert isinstance(result, Proposal), raw
    return result


@pytest.mark.parametrize(("name", "own", "other", "claim"), [
    ("welfare", (10, 10, 1), (10, 1, 10), (5, 10, 0)),
    ("welfare", (10, 1, 10), (10, 10, 1), (5, 0, 10)),
    ("welfare", (1, 10, 1), (10, 1, 1), (0, 10, 5)),
    ("greedy", (10, 10, 1), (10, 1, 10), (10, 10, 10)),
    ("fair", (10, 10, 1), (10, 1, 10), (5, 5, 5)),
])
def test_split_claims(name: str, own: tuple, other: tuple, claim: tuple) -> None:
    assert split_claim(name, own, other).counts == claim


def test_welfare_pair_reaches_max_welfare_every_round() -> None:
    games = [make_game("split") for _ in range(10)]
    welfare = make_scripted("welfare", games[0])
    play(games, [(welfare, welfare)] * len(games), list(range(len(games))))
    for game in games:
        best = [sum(10 * max(a, b) for a, b in zip(r.own_values, r.other_values, strict=True))
                for r in game.view(0).history]
        got = [sum(r) for r in game.round_rewards]
        assert got == pytest.approx(best), game.seed
        assert sum(game.returns()) == pytest.approx(game.max_welfare())


def test_greedy_exploits_welfare_in_split() -> None:
    game = make_game("split")
    play([game], [(make_scripted("greedy", game), make_scripted("welfare", game))], [2])
    for index, (greedy, welfare) in enumerate(game.round_rewards):
        assert greedy > welfare, f"round {index}: greedy {greedy} <= welfare {welfare}"


# --------------------------------------------------------------------------
# Trust-and-Split
# --------------------------------------------------------------------------
def tas_proposals(game: TrustSplitGame, seat: int) -> list[int]:
    return [r.own_coins for r in game.view(seat).history]


@pytest.mark.parametrize("seed", range(6))
def test_truthful_pair_reaches_100_every_round(seed: int) -> None:
    game = make_game("trust_split")
    truthful = make_scripted("truthful", game)
    play([game], [(truthful, truthful)], [seed])
    for index, (rewards, past) in enumerate(zip(game.round_rewards, game.view(0).history, strict=True)):
        expected = (100.0, 0.0) if past.upper else (0.0, 100.0)
        assert rewards == expected, f"round {index}: {rewards}, seat 0 upper={past.upper}"
        assert stated_hand(past.own_message) == past.own_hand
        assert stated_hand(past.other_message) == past.other_hand


@pytest.mark.parametrize("liar_seat", [0, 1])
def test_liar_exploits_truthful_once_then_truthful_stops_trusting(liar_seat: int) -> None:
    truthful_seat = 1 - liar_seat
    game = TrustSplitGame()
    for seed in range(1000):  # a game where the liar holds the lower hand in round 0
        game.reset(seed)
        if beats(game.hands[0][truthful_seat], game.hands[0][liar_seat]):
            break
    seating = [None, None]
    seating[liar_seat] = make_scripted("liar", game)
    seating[truthful_seat] = make_scripted("truthful", game)
    play([game], [tuple(seating)], [seed])
    first = game.view(truthful_seat).history[0]
    assert stated_hand(first.other_message) != first.other_hand, "the liar told the truth in round 0"
    assert first.own_coins == 0 and first.other_coins == 10
    assert (first.own_reward, first.other_reward) == (0.0, 10.0), "the lie did not pay in round 0"
    later = tas_proposals(game, truthful_seat)[1:]
    assert later == [10] * 9, f"truthful trusted a detected liar: {later}"


def test_liar_claims_the_hand_that_beats_the_stated_one() -> None:
    liar = make_scripted("liar", TrustSplitGame())
    view = TrustView(hand="rock", speaks_first=False, own_message=None,
                     other_message="My hand is scissors.", history=())
    assert stated_hand(liar.message(view)) == "rock"
    view = TrustView(hand="rock", speaks_first=False, own_message=None,
                     other_message="My hand is paper.", history=())
    assert stated_hand(liar.message(view)) == "scissors"
    first = TrustView(hand="rock", speaks_first=True, own_message=None, other_message=None, history=())
    assert stated_hand(liar.message(first)) == "scissors"  # the hand its own hand beats
    assert liar.coins(first) == 10


def test_truthful_believes_a_claim_but_not_an_impossible_one() -> None:
    truthful = make_scripted("truthful", TrustSplitGame())

    def view(other_message: str | None) -> TrustView:
        return TrustView(hand="rock", speaks_first=True, own_message="My hand is rock.",
                         other_message=other_message, history=())
    assert truthful.message(view(None)) == "My hand is rock."
    assert truthful.coins(view("My hand is scissors.")) == 10  # rock beats scissors: upper
    assert truthful.coins(view("My hand is paper.")) == 0      # paper beats rock: lower
    assert truthful.coins(view("My hand is rock.")) == 10      # hands differ: a lie seen at once
    assert truthful.coins(view("I will keep all the coins.")) == 10  # no claim to trust
    raw = truthful.respond(view("My hand is paper."), PROPOSAL, random.Random(0))
    assert raw == "<keep coins=0>"


def test_greedy_tas_names_no_hand_and_truthful_then_keeps_everything() -> None:
    game = make_game("trust_split")
    play([game], [(make_scripted("greedy", game), make_scripted("truthful", game))], [1])
    assert all(stated_hand(r.own_message) is None for r in game.view(0).history)
    assert tas_proposals(game, 1) == [10] * 10


# --------------------------------------------------------------------------
# Deal or No Deal
# --------------------------------------------------------------------------
def test_half_split_is_closest_to_half_the_pool() -> None:
    assert worth(half_split((1, 4, 2), (2, 1, 2)), (2, 1, 2)) == 5
    # Only 0 or 10 are possible: ties go to the higher value, never to nothing.
    assert half_split((2, 4, 1), (0, 0, 10)) == (0, 0, 1)
    # Values 4, 2, 0 on a pool of 1, 3, 1 cannot make 5; 4 and 6 tie and the higher wins.
    assert worth(half_split((1, 3, 1), (4, 2, 0)), (4, 2, 0)) == 6


def test_fair_accepts_an_offer_worth_its_own_split() -> None:
    fair = make_scripted("fair", DealGame())
    pool, values = (1, 4, 2), (2, 1, 2)   # own split is worth 5

    def plan(offer: str) -> tuple[int, ...]:
        return fair.plan(DealView(pool, values, False, (Line(False, offer),), ()))
    assert plan("I take books=0 hats=4 balls=0.") == (1, 0, 2)   # leaves 6 >= 5: accept
    assert plan("I take books=1 hats=4 balls=0.") == half_split(pool, values)  # leaves 4: refuse
    assert plan("I take books=5 hats=0 balls=0.") == half_split(pool, values)  # not in the pool
    assert plan("hello") == half_split(pool, values)


def test_deal_greedy_pair_and_greedy_vs_fair_never_agree() -> None:
    for other in ("greedy", "fair"):
        game = make_game("deal")
        play([game], [(make_scripted("greedy", game), make_scripted(other, game))], [3])
        assert game.returns() == (0.0, 0.0), other
        assert all(r.own_claim == r.pool for r in game.view(0).history)


def test_fair_pair_agrees_when_the_offer_is_accepted() -> None:
    games = [make_game("deal") for _ in range(10)]
    fair = make_scripted("fair", games[0])
    play(games, [(fair, fair)] * len(games), list(range(len(games))))
    deals = 0
    for game in games:
        for seat in (0, 1):
            for past in game.view(seat).history:
                agreed = complementary((past.own_claim, past.other_claim), past.pool)
                assert past.agreed == agreed
                deals += agreed and seat == 0
                if agreed:
                    # Each side got at least what it would have asked for itself.
                    own_split = half_split(past.pool, past.own_values)
                    assert past.own_reward >= worth(own_split, past.own_values), (game.seed, past)
    assert deals >= 50, f"only {deals} deals in 100 rounds of fair self-play"
