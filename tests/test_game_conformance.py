"""One conformance check every registered game passes (PettingZoo's ``parallel_api_test`` idea).

``check_game`` drives a game decision by decision with scripted players and
asserts the protocol of ``games/base.py``: deterministic given the seed,
``pending`` stable between steps, non-empty observation text at every
decision, ``step`` refusing the wrong seats and actions that do not fit,
one reward pair per round, done after ``n_rounds``. Then every scripted
strategy of a game plays every other one (both seats, one batch), and a clone
replays a game identically (Axelrod's ``test_clone_reproducible_play``).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest

from detente.games import GAMES, make_game
from detente.games.base import (
    SEATS,
    Choice,
    ChoiceSpec,
    Game,
    Message,
    MessageSpec,
    ParseError,
    Proposal,
    ProposalSpec,
    fallback_action,
)
from detente.policies.base import Decision
from detente.policies.scripted import REGISTRY, make_scripted, scripted_names
from detente.rollout.play import play

NAMES = sorted(GAMES)


@dataclass(frozen=True)
class Step:
    round: int
    seat: int
    spec: object
    observation: str
    raw: str


def drive(game: Game, players: tuple[str, str], seed: int) -> tuple[list[Step], list[tuple[float, float]]]:
    """Play ``game`` to the end, checking the protocol at every decision; return the trace."""
    policies = tuple(make_scripted(name, game) for name in players)
    rngs = tuple(random.Random(f"{seed}:{seat}") for seat in SEATS)
    game.reset(seed)
    trace: list[Step] = []
    while not game.done:
        pending = game.pending()
        assert pending, f"round {game.round}: not done but nobody must act"
        assert game.pending() == pending, "pending() changed without a step"
        actions = {}
        for seat, spec in pending.items():
            assert isinstance(spec, ChoiceSpec | ProposalSpec | MessageSpec), spec
            observation = game.observation(seat)
            assert observation.strip(), f"round {game.round}: empty observation for seat {seat}"
            assert game.observation(seat) == observation, "observation() is not idempotent"
            game.view(seat)  # reading the view must not change anything
            (raw,) = policies[seat].act([Decision(game, seat, spec, 0, rngs[seat])])
            action = game.parse(seat, raw)
            assert not isinstance(action, ParseError), f"scripted {players[seat]} wrote {raw!r}: {action}"
            actions[seat] = action
            trace.append(Step(game.round, seat, spec, observation, raw))
        for seat in SEATS:
            if seat not in pending:
                assert isinstance(game.parse(seat, "anything"), ParseError), "a waiting seat could act"
        assert game.pending() == pending, "view/observation/parse changed pending()"
        check_step_rejects_wrong_seats(game, actions)
        rounds_before = game.round
        rewards = game.step(actions)
        if rewards is None:
            assert game.round == rounds_before
        else:
            assert game.round == rounds_before + 1
            assert len(rewards) == 2 and all(isinstance(r, float) for r in rewards)
    return trace, list(game.round_rewards)


def check_step_rejects_wrong_seats(game: Game, actions: dict) -> None:
    """``step`` must refuse missing seats, extra seats and actions that do not fit the spec."""
    pending = game.pending()
    for seat in actions:
        with pytest.raises(ValueError, match="expected actions for seats"):
            game.step({s: a for s, a in actions.items() if s != seat})
    for seat in SEATS:
        if seat not in pending:
            with pytest.raises(ValueError, match="expected actions for seats"):
                game.step({**actions, seat: fallback_action(pending[next(iter(pending))])})
    seat, spec = next(iter(pending.items()))
    wrong = Message("x") if not isinstance(spec, MessageSpec) else Proposal((1,))
    with pytest.raises(ValueError, match="does not fit"):
        game.step({**actions, seat: wrong})
    if isinstance(spec, ChoiceSpec):
        with pytest.raises(ValueError, match="does not fit"):
            game.step({**actions, seat: Choice(len(spec.options))})
    if isinstance(spec, ProposalSpec):
        with pytest.raises(ValueError, match="does not fit"):
            game.step({**actions, seat: Proposal((spec.high + 1,) * len(spec.fields))})
    assert game.pending() == pending, "a refused step changed the game"


def check_game(name: str, n_rounds: int, seed: int) -> None:
    game = make_game(name, n_rounds=n_rounds)
    assert game.name and isinstance(game.version, int) and game.reward_scale > 0
    names = scripted_names(game)
    assert len(names) >= 2, f"{name} needs at least two scripted strategies"
    players = (names[0], names[-1])
    trace, rewards = drive(game, players, seed)
    assert game.done and game.pending() == {}
    assert game.round == game.n_rounds
    assert len(rewards) == game.n_rounds
    assert game.n_rounds == n_rounds
    assert game.returns() == (sum(r[0] for r in rewards), sum(r[1] for r in rewards))
    assert sum(game.returns()) <= game.max_welfare() + 1e-9, "more welfare than the maximum"
    with pytest.raises(ValueError):
        game.step({0: fallback_action(trace[-1].spec)})  # nothing is pending once done
    again = drive(make_game(name, n_rounds=n_rounds), players, seed)
    assert again == (trace, rewards), "the same seed and players gave a different game"


@pytest.mark.parametrize("n_rounds", [1, 3, 10])
@pytest.mark.parametrize("name", NAMES)
def test_check_game(name: str, n_rounds: int) -> None:
    check_game(name, n_rounds, seed=n_rounds)


@pytest.mark.parametrize("name", ["split", "trust_split", "deal"])
def test_random_games_differ_between_seeds(name: str) -> None:
    game = make_game(name)
    players = tuple(scripted_names(game)[:2])
    traces = {tuple(s.observation for s in drive(game, players, seed)[0]) for seed in range(4)}
    assert len(traces) > 1


def test_deal_message_turns_flag() -> None:
    for turns in (0, 1, 2):
        game = make_game("deal", n_rounds=2, message_turns=turns)
        trace, _ = drive(game, ("fair", "fair"), seed=1)
        messages = sum(isinstance(step.spec, MessageSpec) for step in trace)
        assert messages == 2 * 2 * turns
    with pytest.raises(ValueError, match="message_turns"):
        make_game("deal", message_turns=-1)


@pytest.mark.parametrize("name", NAMES)
def test_bad_round_count_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="n_rounds"):
        make_game(name, n_rounds=0)


@pytest.mark.parametrize("name", NAMES)
def test_every_scripted_pair_plays_a_full_game(name: str) -> None:
    """All strategies against all (both seats, self-play included) in one batch, no invalid move."""
    probe = make_game(name)
    pairs = list(itertools.product(scripted_names(probe), repeat=2))
    games = [make_game(name) for _ in pairs]
    seatings = [(make_scripted(a, probe), make_scripted(b, probe)) for a, b in pairs]
    episodes = play(games, seatings, list(range(len(pairs))))
    for (a, b), episode in zip(pairs, episodes, strict=True):
        assert episode.game.done, (a, b)
        assert len(episode.game.round_rewards) == episode.game.n_rounds, (a, b)
        assert episode.invalid == 0, (a, b, [d for d in episode.decisions if not d.valid][:1])


@pytest.mark.parametrize("name", NAMES)
def test_clone_reproducible_play(name: str) -> None:
    """A fresh copy of each strategy replays the same seeded game identically."""
    probe = make_game(name)
    for short in scripted_names(probe):
        partner = scripted_names(probe)[0]
        histories = []
        for _ in range(2):
            game = make_game(name)
            (episode,) = play([game], [(make_scripted(short, probe), make_scripted(partner, probe))], [7])
            histories.append(([(d.round, d.seat, d.raw, d.action) for d in episode.decisions],
                              game.round_rewards))
        assert histories[0] == histories[1], short


def test_every_registered_strategy_declares_its_metadata() -> None:
    for cls in REGISTRY:
        assert cls.__doc__ and "Names:" in cls.__doc__, cls.__name__
        assert isinstance(cls.short_name, str) and cls.short_name, cls.__name__
        assert cls.memory_depth >= 0, cls.__name__
        assert isinstance(cls.stochastic, bool), cls.__name__
    pairs = [(cls.short_name, cls.game_type) for cls in REGISTRY]
    assert len(pairs) == len(set(pairs)), "two strategies share a name within one game family"


@pytest.mark.parametrize(("short", "name", "cls_name"), [
    ("greedy", "split", "GreedySplit"),
    ("greedy", "trust_split", "GreedyTrust"),
    ("greedy", "deal", "GreedyDeal"),
    ("fair", "split", "FairSplit"),
    ("fair", "deal", "FairDeal"),
])
def test_make_scripted_picks_by_game_type(short: str, name: str, cls_name: str) -> None:
    assert type(make_scripted(short, make_game(name))).__name__ == cls_name


def test_make_scripted_refuses_a_strategy_of_another_game() -> None:
    with pytest.raises(ValueError, match="no scripted strategy 'truthful' for game 'split'"):
        make_scripted("truthful", make_game("split"))
