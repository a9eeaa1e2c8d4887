"""SPEC section 2 reference values, as literature tests (Axelrod's ``test_output_from_literature``).

Every number here is quoted from SPEC.md; the games must reproduce it through
their public API (raw text in, rewards out), not only through helper
functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from detente.games import make_game
from detente.games.base import Choice, Game, Message, Proposal
from detente.games.deal import (
    MAX_COUNT,
    MAX_ITEMS,
    MIN_COUNT,
    MIN_ITEMS,
    POOL_VALUE,
    DealGame,
    complementary,
    deal_rewards,
)
from detente.games.split import SplitGame, divide, split_rewards
from detente.games.trust_split import HANDS, TrustSplitGame, beats, tas_rewards
from detente.policies.scripted import make_scripted
from detente.rollout.play import play


def find_seed(game: Game, wanted: Callable[[Game], bool], limit: int = 5000) -> int:
    """Reset ``game`` with seeds 0, 1, ... until ``wanted(game)``; the game is left reset with it."""
    for seed in range(limit):
        game.reset(seed)
        if wanted(game):
            return seed
    raise AssertionError(f"no seed below {limit} gives the wanted deal")


def parse_all(game: Game, raws: dict[int, str]) -> dict:
    actions = {seat: game.parse(seat, raw) for seat, raw in raws.items()}
    for seat, action in actions.items():
        assert isinstance(action, Message | Proposal), f"seat {seat}: {action}"
    return actions


# --------------------------------------------------------------------------
# 2.1 IPD
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [
        ("allc", "allc", (30.0, 30.0)),  # mutual cooperation
        ("alld", "alld", (10.0, 10.0)),  # mutual defection
        ("alld", "tft", (14.0, 9.0)),    # always-defect vs tit-for-tat
        ("alld", "allc", (50.0, 0.0)),   # always-defect vs always-cooperate
    ],
)
def test_ipd_reference_values(row: str, col: str, expected: tuple[float, float]) -> None:
    game = make_game("ipd")
    (episode,) = play([game], [(make_scripted(row, game), make_scripted(col, game))], [0])
    assert game.n_rounds == 10
    assert game.returns() == expected
    assert episode.invalid == 0


@pytest.mark.parametrize("recap", [False, True])
def test_ipd_round_message_names_the_other_move_and_with_recap_both(recap: bool) -> None:
    game = make_game("ipd", n_rounds=3, recap=recap)
    game.reset(0)
    game.step({0: Choice(0), 1: Choice(1)})  # seat 0 plays A, seat 1 plays B
    first_line = {seat: game.observation(seat).splitlines()[0] for seat in (0, 1)}
    if recap:
        assert first_line == {0: "Last round you played <A> and the other agent played <B>.",
                              1: "Last round you played <B> and the other agent played <A>."}
    else:  # the paper's text
        assert first_line == {0: "The other agent played <B> last round.",
                              1: "The other agent played <A> last round."}


def test_ipd_reference_values_hold_in_both_seats() -> None:
    game = make_game("ipd")
    play([game], [(make_scripted("tft", game), make_scripted("alld", game))], [0])
    assert game.returns() == (9.0, 14.0)


# --------------------------------------------------------------------------
# 2.2 Split
# --------------------------------------------------------------------------
VALUES_A, VALUES_B = (10, 10, 1), (10, 1, 10)


def test_split_reference_value_formula() -> None:
    rewards = split_rewards(((10, 10, 10), (5, 0, 10)), (VALUES_A, VALUES_B))
    assert (round(rewards[0], 2), round(rewards[1], 2)) == (171.67, 83.33)


@pytest.mark.parametrize("seat_a", [0, 1])
def test_split_reference_value_in_game(seat_a: int) -> None:
    """Claims (10,10,10) vs (5,0,10) with A=(10,10,1), B=(10,1,10) give 171.67 / 83.33."""
    game = SplitGame(n_rounds=1)
    find_seed(game, lambda g: g.view(seat_a).own_values == VALUES_A
              and g.view(seat_a).other_values == VALUES_B)
    seat_b = 1 - seat_a
    actions = parse_all(game, {seat_a: "<keep hats=10 books=10 balls=10>",
                               seat_b: "<keep hats=5 books=0 balls=10>"})
    rewards = game.step(actions)
    assert rewards is not None
    assert round(rewards[seat_a], 2) == 171.67
    assert round(rewards[seat_b], 2) == 83.33
    assert "171.67" in game.observation(seat_a) and "83.33" in game.observation(seat_a)


def test_split_claims_that_fit_are_granted_and_the_rest_lost() -> None:
    assert divide(3, 4, 10) == (3.0, 4.0)
    assert divide(10, 0, 10) == (10.0, 0.0)
    assert divide(0, 0, 10) == (0.0, 0.0)
    assert divide(10, 10, 10) == (5.0, 5.0)
    # Values A on (3,0,0) vs B on (0,0,4): 30 and 40, the other items lost.
    assert split_rewards(((3, 0, 0), (0, 0, 4)), (VALUES_A, VALUES_B)) == (30.0, 40.0)


def test_split_max_welfare_counts_played_rounds_only() -> None:
    game = SplitGame(n_rounds=3)
    find_seed(game, lambda g: g.view(0).own_values == VALUES_A and g.view(0).other_values == VALUES_B)
    assert game.max_welfare() == 0.0
    game.step({0: Proposal((10, 10, 0)), 1: Proposal((0, 0, 10))})
    assert game.max_welfare() == 10 * (10 + 10 + 10)
    assert game.returns() == (200.0, 100.0)


def test_split_value_drawing_invariants() -> None:
    """Values in {1, 10}; totals equal; at least one item valued differently (SPEC 2.2)."""
    seen = Counter()
    game = SplitGame(n_rounds=10)
    for seed in range(200):
        game.reset(seed)
        for a, b in game.values:
            assert set(a) | set(b) <= {1, 10}, (seed, a, b)
            assert sum(a) == sum(b), (seed, a, b)
            assert a != b, (seed, a, b)
            seen[(a, b)] += 1
    # Equal totals with a difference leave 12 ordered pairs (one or two 10s each); all occur.
    assert len(seen) == 12


# --------------------------------------------------------------------------
# 2.3 Trust-and-Split
# --------------------------------------------------------------------------
def test_tas_reference_value_formula() -> None:
    upper, lower = "paper", "rock"
    rewards = tas_rewards((7, 6), (upper, lower))
    assert (round(rewards[0], 2), round(rewards[1], 2)) == (53.85, 4.62)
    assert tas_rewards((10, 10), (upper, lower)) == (50.0, 5.0)  # two greedy agents: 55 in total
    assert tas_rewards((10, 0), (upper, lower)) == (100.0, 0.0)  # best collective outcome


def test_tas_reference_value_in_game() -> None:
    """7 vs 6 coins with the first agent holding the upper hand give 53.85 / 4.62."""
    game = TrustSplitGame(n_rounds=1)
    find_seed(game, lambda g: beats(*g.hands[0]))
    while len(game.pending()) == 1:
        (seat,) = game.pending()
        assert game.step(parse_all(game, {seat: "<<message_start>>hello<<message_end>>"})) is None
    rewards = game.step(parse_all(game, {0: "<keep coins=7>", 1: "I keep coins: 6"}))
    assert rewards is not None
    assert (round(rewards[0], 2), round(rewards[1], 2)) == (53.85, 4.62)
    past = game.view(1).history[0]
    assert not past.upper and past.other_coins == 7 and past.own_coins == 6


def test_tas_greedy_pair_gets_55_per_round() -> None:
    game = make_game("trust_split")
    greedy = make_scripted("greedy", game)
    play([game], [(greedy, greedy)], [3])
    assert [sum(r) for r in game.round_rewards] == [55.0] * 10


def test_tas_drawing_invariants() -> None:
    """Hands always differ; the first speaker is random per game and alternates each round."""
    first_speakers = Counter()
    upper_seats = Counter()
    for seed in range(200):
        game = TrustSplitGame(n_rounds=10)
        game.reset(seed)
        speakers = []
        while not game.done:
            pending = game.pending()
            if len(pending) == 1 and len(speakers) == game.round:  # the round's first message
                speakers.append(next(iter(pending)))
            game.step({seat: Message("x") if len(pending) == 1 else Proposal((5,)) for seat in pending})
        for own, theirs in game.hands:
            assert own != theirs and {own, theirs} <= set(HANDS), (seed, own, theirs)
            upper_seats[0 if beats(own, theirs) else 1] += 1
        assert len(speakers) == 10, seed
        assert all(speakers[r] != speakers[r + 1] for r in range(9)), (seed, speakers)
        first_speakers[speakers[0]] += 1
    assert first_speakers[0] > 50 and first_speakers[1] > 50
    assert upper_seats[0] > 500 and upper_seats[1] > 500


def test_tas_second_speaker_sees_the_first_message() -> None:
    game = TrustSplitGame(n_rounds=1)
    game.reset(0)
    (first,) = game.pending()
    game.step({first: Message("My hand is paper.")})
    (second,) = game.pending()
    assert second == 1 - first
    assert "My hand is paper." in game.observation(second)
    assert game.view(second).other_message == "My hand is paper."
    assert game.view(first).other_message is None


def test_tas_reveals_hands_after_the_round() -> None:
    game = TrustSplitGame(n_rounds=2)
    game.reset(5)
    hands = game.hands[0]
    for seat in speaking_order(game):
        game.step({seat: Message("hi")})
    game.step({0: Proposal((3,)), 1: Proposal((4,))})
    for seat in (0, 1):
        told = game.observation(seat)
        assert f"the other agent's hand was {hands[1 - seat]}" in told
        assert "<keep coins=" + str(3 if seat == 1 else 4) + ">" in told
        assert game.view(seat).history[0].other_hand == hands[1 - seat]


def speaking_order(game: TrustSplitGame) -> list[int]:
    first = game.speaker(game.round)
    return [first, 1 - first]


# --------------------------------------------------------------------------
# 2.4 Deal or No Deal
# --------------------------------------------------------------------------
def test_deal_rewards_only_for_complementary_claims() -> None:
    pool, values = (1, 4, 2), ((2, 1, 2), (0, 2, 1))
    assert deal_rewards(((1, 0, 2), (0, 4, 0)), pool, values) == (6.0, 8.0)
    assert deal_rewards(((1, 4, 2), (0, 0, 0)), pool, values) == (10.0, 0.0)
    assert deal_rewards(((1, 0, 1), (0, 4, 0)), pool, values) == (0.0, 0.0)  # a ball left over
    assert deal_rewards(((1, 4, 2), (1, 4, 2)), pool, values) == (0.0, 0.0)  # both want all
    assert not complementary(((2, 0, 2), (0, 4, 0)), pool)  # more books than exist


def test_deal_in_game_points_and_no_deal() -> None:
    game = DealGame(n_rounds=2, message_turns=0)
    game.reset(11)
    pool = game.view(0).pool
    values = (game.view(0).own_values, game.view(1).own_values)
    mine = (pool[0], 0, 0)
    rest = (0, pool[1], pool[2])
    rewards = game.step(parse_all(game, {
        0: f"<take books={mine[0]} hats=0 balls=0>",
        1: f"<take books=0 hats={rest[1]} balls={rest[2]}>",
    }))
    assert rewards == (float(pool[0] * values[0][0]),
                       float(pool[1] * values[1][1] + pool[2] * values[1][2]))
    assert "deal" in game.observation(0) and "no deal" not in game.observation(0)
    pool = game.view(0).pool
    rewards = game.step({0: Proposal(pool), 1: Proposal((0, 0, 1))})
    assert rewards == (0.0, 0.0)
    assert "no deal" in game.observation(1)
    assert game.done


def test_deal_drawing_invariants() -> None:
    """Pools of 1..4 per kind and 5..7 items; each agent's pool worth 10; Lewis et al. constraints."""
    totals = Counter()
    game = DealGame(n_rounds=10)
    for seed in range(200):
        game.reset(seed)
        for pool, (a, b) in zip(game.pools, game.values, strict=True):
            assert all(MIN_COUNT <= n <= MAX_COUNT for n in pool), pool
            assert MIN_ITEMS <= sum(pool) <= MAX_ITEMS, pool
            assert sum(n * v for n, v in zip(pool, a, strict=True)) == POOL_VALUE, (pool, a)
            assert sum(n * v for n, v in zip(pool, b, strict=True)) == POOL_VALUE, (pool, b)
            assert all(va > 0 or vb > 0 for va, vb in zip(a, b, strict=True)), (a, b)
            assert any(va > 0 and vb > 0 for va, vb in zip(a, b, strict=True)), (a, b)
            totals[sum(pool)] += 1
    assert set(totals) == {5, 6, 7}


def test_deal_message_turns_alternate_then_both_claim() -> None:
    game = DealGame(n_rounds=2, message_turns=3)
    game.reset(4)
    for round_index in range(2):
        speakers = []
        while len(game.pending()) == 1:
            (seat,) = game.pending()
            speakers.append(seat)
            game.step({seat: Message(f"message {len(speakers)}")})
        assert len(speakers) == 6
        assert speakers == [speakers[0], 1 - speakers[0]] * 3
        assert speakers[0] == (game.first_speaker + round_index) % 2
        assert set(game.pending()) == {0, 1}
        game.step({0: Proposal((0, 0, 0)), 1: Proposal((0, 0, 0))})
    assert game.done
