"""The PettingZoo ``ParallelEnv`` adapter: PettingZoo's own API test on every game, plus behaviour."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test

from detente.games import GAMES, make_game
from detente.games.base import MessageSpec, fallback_action
from detente.games.pettingzoo_env import AGENTS, DetenteParallelEnv, parallel_env

NAMES = sorted(GAMES)


@pytest.mark.parametrize("name", NAMES)
def test_parallel_api(name: str) -> None:
    env = parallel_env(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=1000)
    assert not [str(w.message) for w in caught]


@pytest.mark.parametrize("name", NAMES)
def test_env_ends_after_the_game(name: str) -> None:
    env = parallel_env(name, n_rounds=2)
    observations, _ = env.reset(seed=3)
    assert set(observations) == set(AGENTS) and all(observations.values())
    steps = 0
    while env.agents:
        _, _, terminations, truncations, _ = env.step(dict.fromkeys(env.agents, "x"))
        steps += 1
        assert not any(truncations.values())
        assert len(set(terminations.values())) == 1, "agents finished at different steps"
    assert env.game.done and env.game.round == 2
    reference = make_game(name, n_rounds=2)
    reference.reset(3)
    decision_points = 0
    while not reference.done:
        reference.step({seat: fallback_action(spec) for seat, spec in reference.pending().items()})
        decision_points += 1
    assert steps == decision_points, "one env step must be one game step"
    with pytest.raises(RuntimeError, match="reset"):
        env.step(dict.fromkeys(AGENTS, "x"))


def test_ipd_through_the_env_reproduces_the_reference_value() -> None:
    env = parallel_env("ipd")
    env.reset(seed=0)
    totals = dict.fromkeys(AGENTS, 0.0)
    while env.agents:
        _, rewards, *_ = env.step({"player_0": "<B>", "player_1": "I play <A>"})
        for agent, reward in rewards.items():
            totals[agent] += reward
    assert totals == {"player_0": 50.0, "player_1": 0.0}


def test_only_pending_seats_act_and_invalid_text_is_reported() -> None:
    env = DetenteParallelEnv(make_game("trust_split", n_rounds=1))
    _, infos = env.reset(seed=0)
    speaker = next(agent for agent in AGENTS if infos[agent]["must_act"])
    waiting = next(agent for agent in AGENTS if agent != speaker)
    assert isinstance(infos[speaker]["spec"], MessageSpec) and infos[waiting]["spec"] is None
    _, rewards, _, _, infos = env.step({speaker: "My hand is rock.", waiting: "ignored words"})
    assert rewards == dict.fromkeys(AGENTS, 0.0)
    seat = {agent: i for i, agent in enumerate(AGENTS)}
    assert env.game.view(seat[waiting]).other_message == "My hand is rock."
    assert env.game.view(seat[speaker]).own_message == "My hand is rock."
    assert infos[waiting]["must_act"] and not infos[speaker]["must_act"]
    env.step({speaker: "ignored", waiting: "My hand is paper."})
    assert env.game.view(seat[speaker]).other_message == "My hand is paper."
    _, rewards, terminations, _, infos = env.step({speaker: "<keep coins=3>", waiting: "no idea"})
    assert infos[waiting]["invalid"] and "no count found" in infos[waiting]["invalid"]
    assert infos[speaker]["invalid"] is None
    past = env.game.view(seat[speaker]).history[0]
    assert (past.own_coins, past.other_coins) == (3, 0)  # the fallback proposal keeps nothing
    assert all(terminations.values()) and env.agents == []


def test_a_pending_agent_must_send_an_action() -> None:
    env = parallel_env("ipd")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="player_1 must act"):
        env.step({"player_0": "<A>"})


def test_reset_with_a_seed_is_reproducible() -> None:
    env = parallel_env("deal")
    first, _ = env.reset(seed=5)
    other, _ = env.reset(seed=6)
    again, _ = env.reset(seed=5)
    assert first == again and first != other
    assert env.observation_space("player_0").contains(first["player_0"])
    assert env.action_space("player_1") is env.action_space("player_1")


@pytest.mark.parametrize("name", ["ipd", "stag_hunt", "chicken", "matrix"])
def test_matrix_games_carry_the_name_they_were_made_under(name: str) -> None:
    from detente.eval.tournament import cross_play
    from detente.policies.scripted import make_scripted

    game = make_game(name)
    assert game.name == name
    assert DetenteParallelEnv(game).metadata["name"] == f"detente_{name}_v1"
    agents = {"tft": make_scripted("tft", game)}
    assert cross_play(lambda: make_game(name), agents, 2).record.model_dump()["game"] == name
