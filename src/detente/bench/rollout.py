"""Rollout and history-scaling figures: detente's :class:`LLMPolicy` against the naive baseline.

Both play self-play games through :func:`detente.rollout.play.play` (one policy in both seats of
every game), game i with seed ``seed + i``. detente acts with the settings of the ``cpu_tas_adalign``
preset (temperature 1, 16 chats per forward) and both policies with the same message limit (the
preset's 40 tokens; fewer with ``--quick``). A *decision* is one answered decision of a seat: one
:class:`~detente.rollout.play.DecisionRecord`, however many re-asks it took (their time counts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from detente.bench.measure import clock
from detente.bench.naive import NaivePolicy
from detente.config import load_config, preset_path
from detente.games import make_game
from detente.games.base import Seat
from detente.policies.base import Decision, Policy
from detente.policies.llm import LLMPolicy
from detente.policies.llm_backend import LoRAModel
from detente.rollout.play import decide, play

GAMES = ("ipd", "trust_split")
PRESETS = {"ipd": "cpu_ipd_adalign", "trust_split": "cpu_tas_adalign"}
"""The preset of each game whose game length the full benchmark's rollout uses."""
POLICY_PRESET = "cpu_tas_adalign"
"""The preset whose agent settings detente acts with."""
HISTORY_ROUNDS = 20
"""Rounds of the games of the history-scaling figures."""


@dataclass(frozen=True)
class RolloutRecord:
    game: str
    concurrent_games: int
    decisions_per_s: float
    """detente: answered decisions / wall seconds of ``play`` over ``concurrent_games`` games."""
    naive_decisions_per_s: float
    """The naive baseline: answered decisions / wall seconds of ``play`` over the first
    ``naive_games`` of the same games and seeds (it answers one decision at a time, so the
    number of games in flight does not change its rate)."""
    tokens_per_s: float
    """detente: tokens forwarded through the model / wall seconds (``LLMPolicy.stats``'s
    ``forward_tokens``: new chat tokens, candidate tokens of choices and proposals, every sampled
    message token fed back, a shared prefix once). Not generated tokens: the IPD generates none."""
    naive_games: int


@dataclass(frozen=True)
class HistoryRecord:
    game: str
    round: int
    """1-based round of a game of :data:`HISTORY_ROUNDS` rounds."""
    seconds: float
    """detente: wall seconds of every ``act`` call of that round (all its phases and re-asks) in one
    game (:class:`HistoryTimer`)."""
    naive_seconds: float
    """The naive baseline: wall seconds of answering the same round's decisions, re-asks included, over
    the same chat (:class:`HistoryTimer`)."""


@dataclass(frozen=True)
class Played:
    """One timed ``play`` of a batch of games."""

    seconds: float
    decisions: int
    forward_tokens: int
    """Tokens an :class:`LLMPolicy` forwarded (``stats["forward_tokens"]``); 0 for other policies."""

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.seconds


def policy_options(message_tokens: int | None = None) -> dict[str, Any]:
    """The LLMPolicy settings of :data:`POLICY_PRESET`, with another message limit if given."""
    options = load_config(preset_path(POLICY_PRESET)).agent.policy_options()
    return options if message_tokens is None else {**options, "max_message_tokens": message_tokens}


def game_rounds(game: str) -> int:
    """Rounds of ``game`` in its CPU preset (:data:`PRESETS`)."""
    return int(load_config(preset_path(PRESETS[game])).game.params["n_rounds"])


def detente_policy(lm: LoRAModel, message_tokens: int) -> LLMPolicy:
    return LLMPolicy(lm, None, name="detente", **policy_options(message_tokens))


def naive_policy(lm: LoRAModel, message_tokens: int) -> NaivePolicy:
    return NaivePolicy(lm, message_tokens)


def play_timed(policy: Policy, game: str, n_games: int, n_rounds: int, seed: int,
               device: torch.device) -> Played:
    """Self-play ``n_games`` games of ``n_rounds`` rounds (game i with seed ``seed + i``), timed.

    Torch's generator is seeded with ``seed`` first (the naive baseline samples from it)."""
    games = [make_game(game, n_rounds=n_rounds) for _ in range(n_games)]
    torch.manual_seed(seed)
    began = clock(device)
    episodes = play(games, [(policy, policy)] * n_games, [seed + i for i in range(n_games)])
    seconds = clock(device) - began
    tokens = policy.stats["forward_tokens"] if isinstance(policy, LLMPolicy) else 0
    return Played(seconds, sum(len(e.decisions) for e in episodes), tokens)


def fastest(make: Callable[[], Policy], repeats: int, game: str, n_games: int, n_rounds: int, seed: int,
            device: torch.device) -> Played:
    """The fastest of ``repeats`` plays of the same seeded games, each by a fresh policy ``make()``."""
    plays = [play_timed(make(), game, n_games, n_rounds, seed, device) for _ in range(repeats)]
    return min(plays, key=lambda p: p.seconds)


def rollout_record(ours: Played, naive: Played, game: str, n_games: int, naive_games: int) -> RolloutRecord:
    return RolloutRecord(game=game, concurrent_games=n_games, decisions_per_s=ours.decisions_per_s,
                         naive_decisions_per_s=naive.decisions_per_s,
                         tokens_per_s=ours.forward_tokens / ours.seconds, naive_games=naive_games)


def history(lm: LoRAModel, game: str, rounds: Sequence[int], message_tokens: int, repeats: int,
            seed: int) -> list[HistoryRecord]:
    """The history records of ``game``: per reported round the fastest of ``repeats`` plays of the same
    seeded :data:`HISTORY_ROUNDS`-round game (:class:`HistoryTimer`)."""
    best: dict[int, tuple[float, float]] = {}
    for _ in range(repeats):
        timer = HistoryTimer(detente_policy(lm, message_tokens), naive_policy(lm, message_tokens),
                             set(rounds), lm.device)
        play_timed(timer, game, 1, HISTORY_ROUNDS, seed, lm.device)
        for r in rounds:
            ours, naive = timer.seconds[r], timer.naive_seconds[r]
            best[r] = (min(ours, best[r][0]), min(naive, best[r][1])) if r in best else (ours, naive)
    return [HistoryRecord(game=game, round=r, seconds=best[r][0], naive_seconds=best[r][1]) for r in rounds]


class HistoryTimer(Policy):
    """detente's policy playing, each round's ``act`` calls timed and summed (``seconds[r]``, r 1-based:
    every phase of the round and every re-ask); at the ``shadowed`` rounds the naive baseline first
    answers the same decisions over a copy of detente's chat so far, with the play loop's re-asks
    (:func:`~detente.rollout.play.decide`), timed the same way (``naive_seconds[r]``); its replies are
    dropped, so the game and detente's chat go on as if it had not asked.

    A naive game would have to answer every round before round 20 too, each call forwarding the whole
    chat again; over detente's chat it answers the reported rounds only, at the same history length
    (detente's replies are short and valid, so that history is no longer than the naive's own would
    be). The games of a batch advance together, so all the decisions of one call share their round.
    """

    def __init__(self, policy: LLMPolicy, naive: NaivePolicy, shadowed: set[int],
                 device: torch.device) -> None:
        self.policy, self.naive = policy, naive
        self.name = policy.name
        self.shadowed = shadowed
        self.device = device
        self.seconds: defaultdict[int, float] = defaultdict(float)
        self.naive_seconds: defaultdict[int, float] = defaultdict(float)
        self._seatings: list[tuple[Policy, Policy]] = []

    def begin(self, n_slots: int) -> None:
        self.policy.begin(n_slots)
        self.naive.begin(n_slots)
        self._seatings = [(self.naive, self.naive)] * n_slots

    def end(self) -> None:
        self.policy.end()

    def chat(self, slot: int, seat: Seat) -> list[dict[str, str]] | None:
        return self.policy.chat(slot, seat)

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        r = decisions[0].game.round + 1
        fresh = [d for d in decisions if d.retry is None]
        if r in self.shadowed and fresh:
            for d in fresh:
                self.naive.chats[(d.slot, d.seat)] = list(self.policy.chats[d.slot][d.seat].messages)
            began = clock(self.device)
            decide(fresh, self._seatings)
            self.naive_seconds[r] += clock(self.device) - began
        began = clock(self.device)
        replies = self.policy.act(decisions)
        self.seconds[r] += clock(self.device) - began
        return replies
