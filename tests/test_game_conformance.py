"""Every registered game passes ``check_game``; and the game-specific rules it cannot know.

``detente.games.testing.check_game`` (PettingZoo's ``parallel_api_test`` idea)
plays a game with random legal actions and asserts the protocol of
``games/base.py``; here it runs on every registered game and on a toy game it
must pass, and must catch two broken copies of that toy. Then every scripted
strategy of a game plays every other one (both seats, one batch), and a clone
replays a game identically (Axelrod's ``test_clone_reproducible_play``).
"""

from __future__ import annotations

import itertools
import random

import pytest

from detente.games import GAMES, make_game
from detente.games.base import (
    Choice,
    ChoiceSpec,
    Game,
    Message,
    Proposal,
    ProposalSpec,
    Seat,
    check_rounds,
    expect,
)
from detente.games.testing import check_game
from detente.policies.scripted import REGISTRY, make_scripted, scripted_names
from detente.rollout.play import play

NAMES = sorted(GAMES)


@pytest.mark.parametrize("n_rounds", [1, 3, 10])
@pytest.mark.parametrize("name", NAMES)
def test_check_game(name: str, n_rounds: int) -> None:
    game = make_game(name, n_rounds=n_rounds)
    check_game(game, seeds=(n_rounds, n_rounds + 1))
    assert game.n_rounds == n_rounds


@pytest.mark.parametrize("name", NAMES)
def test_every_game_has_two_scripted_strategies(name: str) -> None:
    assert len(scripted_names(make_game(name))) >= 2


# --------------------------------------------------------------------------
# check_game on a toy game, and on two broken copies of it
# --------------------------------------------------------------------------
ACCEPT = ChoiceSpec(options=("<accept>", "<reject>"))


class Ultimatum(Game[Proposal | Choice, tuple[int, ...]]):
    """Toy game: seat 0 offers part of a pie of 5 to 10 coins, seat 1 accepts (both get their part) or
    rejects (both get 0). The view is the pies of the rounds played."""

    name = "ultimatum"
    version = 1
    reward_scale = 10.0

    def __init__(self, n_rounds: int = 3) -> None:
        self.n_rounds = check_rounds(n_rounds)

    def _start(self) -> None:
        self.pies = self._draw_pies()
        self.offer: int | None = None
        self._tell_both("Seat 0 offers part of a pie to seat 1, who accepts or rejects it.")
        self._tell(0, self._ask())

    def _draw_pies(self) -> list[int]:
        return [self.rng.randint(5, 10) for _ in range(self.n_rounds)]

    def _ask(self) -> str:
        return f"The pie is {self.pies[self.round]} coins. Answer <give coins=N>."

    def _spec(self) -> ProposalSpec:
        return ProposalSpec(fields=("coins",), high=self.pies[self.round], pieces=("<give coins=", ">"))

    def pending(self) -> dict[Seat, ProposalSpec | ChoiceSpec]:
        if self.done:
            return {}
        return {0: self._spec()} if self.offer is None else {1: ACCEPT}

    def _apply(self, actions: dict[Seat, Proposal | Choice]) -> tuple[float, float] | None:
        if self.offer is None:
            self.offer = expect(Proposal, actions[0]).counts[0]
            self._tell(1, f"You are offered {self.offer} coins. Answer <accept> or <reject>.")
            return None
        pie, offer, self.offer = self.pies[self.round], self.offer, None
        accepted = expect(Choice, actions[1]).index == 0
        if self.round + 1 < self.n_rounds:
            self._tell(0, f"Accepted: {accepted}. " + self._ask_next())
        return (float(pie - offer), float(offer)) if accepted else (0.0, 0.0)

    def _ask_next(self) -> str:
        return f"The pie is {self.pies[self.round + 1]} coins. Answer <give coins=N>."

    def view(self, seat: Seat) -> tuple[int, ...]:
        return tuple(self.pies[: self.round])

    def max_welfare(self) -> float:
        return float(sum(self.pies[: len(self.round_rewards)]))


class LeakyReset(Ultimatum):
    """Draws its pies from a stream made once in ``__init__``: a replayed seed gets other pies."""

    def __init__(self, n_rounds: int = 3) -> None:
        super().__init__(n_rounds)
        self.stream = random.Random(0)

    def _draw_pies(self) -> list[int]:
        return [self.stream.randint(5, 10) for _ in range(self.n_rounds)]


class LaxStep(Ultimatum):
    """Takes the actions of the seats it waits for and silently drops any others."""

    def step(self, actions: dict[Seat, Proposal | Choice]) -> tuple[float, float] | None:
        return super().step({seat: action for seat, action in actions.items() if seat in self.pending()})


def test_check_game_passes_a_new_game() -> None:
    check_game(Ultimatum(), seeds=range(5))


@pytest.mark.parametrize(("broken", "message"), [
    (LeakyReset, r"^check_game\(ultimatum\) seed 0, round 0: reset-deterministic: replaying the seed "
                 r"changed decision 0's spec"),
    (LaxStep, r"^check_game\(ultimatum\) seed 0, round 0: step-rejects-extra-seat: step accepted actions "
              r"with an action for seat 1"),
])
def test_check_game_catches_a_broken_game(broken: type[Ultimatum], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_game(broken())


def test_check_game_refuses_no_seeds() -> None:
    with pytest.raises(ValueError, match="at least one seed"):
        check_game(Ultimatum(), seeds=())


# --------------------------------------------------------------------------
# Game-specific rules
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["split", "trust_split", "deal"])
def test_random_games_differ_between_seeds(name: str) -> None:
    """Seeds 0..3 give different episodes (the views hold every round's values, hands or pools)."""
    views = set()
    for seed in range(4):
        game = make_game(name)
        a, b = scripted_names(game)[:2]
        play([game], [(make_scripted(a, game), make_scripted(b, game))], [seed])
        views.add(game.view(0))
    assert len(views) > 1


def test_deal_message_turns_flag() -> None:
    for turns in (0, 1, 2):
        game = make_game("deal", n_rounds=2, message_turns=turns)
        (episode,) = play([game], [(make_scripted("fair", game), make_scripted("fair", game))], [1])
        messages = sum(isinstance(d.action, Message) for d in episode.decisions)
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
