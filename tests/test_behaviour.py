"""Behaviour statistics for every game: hand-played episodes with known answers, and the tournament wiring."""

from __future__ import annotations

import pytest

from detente.behaviour import behaviour
from detente.behaviour.deal import deal_behaviour
from detente.behaviour.matrix import matrix_behaviour
from detente.behaviour.split import split_behaviour
from detente.behaviour.trust_split import trust_behaviour
from detente.eval.tournament import cross_play
from detente.games import make_game
from detente.games.base import Message, Proposal
from detente.games.deal import DealGame
from detente.games.trust_split import HANDS, TrustSplitGame, beats
from detente.policies.scripted import make_scripted
from detente.rollout.play import play

KEYS = {
    "ipd": {"cooperation_rate", "mutual_cooperation_rate", "retaliation_rate", "forgiveness_rate",
            "first_move_cooperation_rate"},
    "split": {"claim_valued_more", "claim_valued_less", "claim_valued_equal"},
    "trust_split": {"truthful_rate", "lie_rate", "no_claim_rate", "honesty_rate", "coins_upper",
                    "coins_lower", "punishment_rate", "take_all_otherwise_rate"},
    "deal": {"agreement_rate", "mean_own_points"},
}


def scripted_games(game_name: str, a: str, b: str, n: int = 6) -> list:
    """``n`` finished games of scripted ``a`` (seat 0) against scripted ``b`` (seat 1)."""
    probe = make_game(game_name)
    seating = (make_scripted(a, probe), make_scripted(b, probe))
    return [e.game for e in play([make_game(game_name) for _ in range(n)], [seating] * n, range(n))]


# ---------------------------------------------------------------- IPD
def test_ipd_first_move_cooperation_and_rates() -> None:
    games = scripted_games("ipd", "stft", "tft")  # C/D: stft D C D C ..., tft C D C D ...
    stft = matrix_behaviour((g, 0) for g in games)
    tft = matrix_behaviour((g, 1) for g in games)
    assert stft["first_move_cooperation_rate"] == 0.0
    assert tft["first_move_cooperation_rate"] == 1.0
    assert stft["cooperation_rate"] == tft["cooperation_rate"] == 0.5
    assert tft["retaliation_rate"] == stft["retaliation_rate"] == 1.0
    assert tft["forgiveness_rate"] == 1.0  # after the other's D then C, tft plays C


def test_ipd_rates_without_data_are_none() -> None:
    allc = matrix_behaviour((g, 0) for g in scripted_games("ipd", "allc", "allc"))
    assert allc["retaliation_rate"] is None and allc["forgiveness_rate"] is None
    assert allc["cooperation_rate"] == 1.0


# ---------------------------------------------------------------- Split
def test_split_claims_by_relative_value() -> None:
    games = scripted_games("split", "welfare", "greedy")
    welfare = split_behaviour((g, 0) for g in games)
    greedy = split_behaviour((g, 1) for g in games)
    assert welfare == {"claim_valued_more": 10.0, "claim_valued_less": 0.0, "claim_valued_equal": 5.0}
    assert greedy == {"claim_valued_more": 10.0, "claim_valued_less": 10.0, "claim_valued_equal": 10.0}


# ---------------------------------------------------------------- Trust-and-Split
def other_hand(hand: str) -> str:
    return next(h for h in HANDS if h != hand)


def play_trust(game: TrustSplitGame, script) -> None:
    """Play ``game`` (reset already) round by round; ``script(t, hands) -> (msg0, msg1, coins0, coins1)``."""
    for t in range(game.n_rounds):
        msg0, msg1, coins0, coins1 = script(t, game.hands[t])
        messages = {0: msg0, 1: msg1}
        for _ in range(2):  # the two messages, in speaking order
            (seat,) = game.pending()
            game.step({seat: Message(messages[seat])})
        game.step({0: Proposal((coins0,)), 1: Proposal((coins1,))})
    assert game.done


def test_trust_split_honesty_proposals_and_punishment() -> None:
    game = TrustSplitGame(n_rounds=4)
    game.reset(7)
    upper0 = [beats(h0, h1) for h0, h1 in game.hands]
    assert upper0 == [False, False, True, True]  # seat 0 holds the upper hand in rounds 2 and 3

    def script(t: int, hands: tuple[str, str]) -> tuple[str, str, int, int]:
        h0, h1 = hands
        coins0 = 10 if beats(h0, h1) else 2
        return [
            (f"My hand is {h0}.", "I keep everything.", coins0, 5),            # seat 1: no claim
            (f"I have {other_hand(h0)}.", f"I don't have {h1}.", coins0, 10),  # both lie
            (f"{h0}", f"My hand is {h1}.", coins0, 10),                       # seat 1 punishes seat 0's lie
            ("", "Rock beats scissors.", coins0, 0),                          # no claims
        ][t]

    play_trust(game, script)
    seat0 = trust_behaviour([(game, 0)])
    seat1 = trust_behaviour([(game, 1)])
    assert seat0 == pytest.approx({
        "truthful_rate": 0.5, "lie_rate": 0.25, "no_claim_rate": 0.25,  # truthful, lie, truthful, nothing
        "honesty_rate": 2 / 3,
        "coins_upper": 10.0, "coins_lower": 2.0,
        "punishment_rate": 1.0,  # round 2 (after seat 1's lie): 10 coins, as it held the upper hand
        "take_all_otherwise_rate": 0.5,  # rounds 1 (2 coins) and 3 (10 coins)
    })
    assert seat1 == pytest.approx({
        # nothing, a denial of its own hand, truthful, a rule of the game
        "truthful_rate": 0.25, "lie_rate": 0.25, "no_claim_rate": 0.5,
        "honesty_rate": 0.5,
        "coins_upper": 7.5, "coins_lower": 5.0,  # upper in rounds 0, 1 (5, 10 coins), lower in 2, 3 (10, 0)
        "punishment_rate": 1.0,  # round 2, after seat 0's lie
        "take_all_otherwise_rate": 0.5,  # 10 in round 1, 0 in round 3
    })


def test_trust_split_figures_without_data_are_none() -> None:
    greedy = trust_behaviour((g, 0) for g in scripted_games("trust_split", "greedy", "greedy"))
    assert greedy["no_claim_rate"] == 1.0
    assert greedy["honesty_rate"] is None  # it never claims a hand
    assert greedy["punishment_rate"] is None  # its partner never lies
    assert greedy["take_all_otherwise_rate"] == 1.0


# ---------------------------------------------------------------- Deal or No Deal
def test_deal_agreement_and_points() -> None:
    game = DealGame(n_rounds=2, message_turns=0)
    game.reset(0)
    pool = game.pools[0]
    game.step({0: Proposal(pool), 1: Proposal((0, 0, 0))})  # complementary: a deal, seat 0 takes all
    game.step({0: Proposal(game.pools[1]), 1: Proposal(game.pools[1])})  # both greedy: no deal
    assert deal_behaviour([(game, 0)]) == {"agreement_rate": 0.5, "mean_own_points": 5.0}
    assert deal_behaviour([(game, 1)]) == {"agreement_rate": 0.5, "mean_own_points": 0.0}


# ---------------------------------------------------------------- dispatch and tournament
@pytest.mark.parametrize("game_name,agents", [
    ("ipd", ["tft", "alld"]),
    ("split", ["greedy", "welfare"]),
    ("trust_split", ["truthful", "liar", "greedy"]),
    ("deal", ["fair", "greedy"]),
])
def test_tournament_fills_behaviour_for_every_game(game_name: str, agents: list[str]) -> None:
    probe = make_game(game_name)
    result = cross_play(lambda: make_game(game_name), {a: make_scripted(a, probe) for a in agents}, 4)
    stats = result.record.model_dump()["stats"]["behaviour"]
    assert set(stats) == set(agents)
    for agent in agents:
        assert set(stats[agent]) == KEYS[game_name], agent
        assert all(v is None or isinstance(v, float) for v in stats[agent].values())


def test_tournament_trust_split_figures() -> None:
    probe = make_game("trust_split")
    agents = {a: make_scripted(a, probe) for a in ("truthful", "liar")}
    stats = cross_play(lambda: make_game("trust_split"), agents, 6).record.stats.behaviour
    assert stats["truthful"]["honesty_rate"] == 1.0
    assert stats["truthful"]["punishment_rate"] == 1.0  # it never trusts a detected liar again
    assert stats["liar"]["lie_rate"] > 0.8  # it lies unless its "winning" claim happens to be its hand
    assert stats["liar"]["coins_upper"] == stats["liar"]["coins_lower"] == 10.0


def test_behaviour_dispatch() -> None:
    assert behaviour([]) == {}
    ipd, split = scripted_games("ipd", "tft", "tft", 1)[0], scripted_games("split", "fair", "fair", 1)[0]
    assert set(behaviour([(ipd, 0)])) == KEYS["ipd"]
    with pytest.raises(ValueError, match="one kind"):
        behaviour([(ipd, 0), (split, 0)])


# ---------------------------------------------------------------- one definition: sampled == exact
TABLE = (0.8, 0.9, 0.3, 0.6, 0.4)  # P(cooperate) in first, CC, CD, DC, DD
OTHER = (0.7, 0.8, 0.5, 0.2, 0.6)


@pytest.mark.parametrize("continuation_prob", [None, 0.8])
def test_sampled_figures_of_games_and_of_trainer_batches_agree_with_the_exact_ones(continuation_prob):
    """Two fixed memory-1 tables: the figures counted in played games (as eval counts them), in the
    tabular trainer's sampled batch, and computed exactly agree within sampling error, figure by figure."""
    import torch

    from detente.behaviour.matrix import FIGURES, play_tables
    from detente.games.ipd import PRESETS
    from detente.policies.tabular import TabularPolicy
    from detente.train.tabular import batch_figures, payoff_tensor, rollout, round_lengths

    exact = play_tables(TABLE, OTHER, PRESETS["prisoners_dilemma"], 10, continuation_prob)
    n = 1500
    games = [make_game("ipd", continuation_prob=continuation_prob) for _ in range(n)]
    seating = (TabularPolicy(TABLE), TabularPolicy(OTHER))
    played = [e.game for e in play(games, [seating] * n, range(n))]
    from_games = matrix_behaviour((g, 0) for g in played)
    generator = torch.Generator().manual_seed(0)
    lengths = round_lengths(20000, 10, continuation_prob, None, generator)
    R = payoff_tensor(PRESETS["prisoners_dilemma"])
    batch = rollout(torch.tensor([TABLE, OTHER]), R, lengths, generator)
    from_batch = batch_figures(batch, [0])
    assert set(from_games) == set(FIGURES)
    for name in FIGURES:
        # a rate over at least ~n qualifying decisions: 4 standard errors of 1/sqrt(n) at most
        assert from_games[name] == pytest.approx(exact[name], abs=4 * 0.5 / n**0.5), name
        assert from_batch[f"behaviour/{name}"] == pytest.approx(exact[name], abs=4 * 0.5 / 20000**0.5), name
    assert from_batch["reward/learner"] == pytest.approx(exact["reward_per_round"], abs=0.05)
