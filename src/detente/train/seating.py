"""Who plays whom in an iteration, and which seats train (SPEC 3).

An iteration's games come in *seed groups* of K games that share one game
seed (the same hands, values, first speaker), so the leave-one-out baseline
compares games that differ only in what the players did. Per group:

* **fixed co-player** (a scripted agent, a frozen run, a model): the learner
  plays it and only the learner's seat trains;
* **self-play, no buffer**: the learner sits in both seats and both train;
* **self-play with the opponent buffer**: with probability ``buffer.prob`` the
  co-player is a past checkpoint drawn uniformly from the buffer, else the
  live learner; either way *one* seat trains, so a group always gives K
  training rows and the buffer's share of the gradient is ``buffer.prob``;
* **a learner co-player** (``coplayer: learner:CONFIG``): the learner plays the
  second live learner and both seats train, each its own learner.

The learner's seat alternates between groups: seat 0 in even groups, seat 1 in
odd ones. All draws come from a stream seeded by ``(config.seed, iteration)``,
so a resumed run plans exactly what an uninterrupted one does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from detente.agent_spec import parse_agent
from detente.agents import make_agent
from detente.config import RunConfig
from detente.games.base import Game, Seat
from detente.policies.base import Policy
from detente.policies.llm import LLMPolicy
from detente.policies.llm_backend import LoRAModel

LEARNER = "learner"
"""Adapter (and policy) name of the agent being trained."""


@dataclass(frozen=True)
class Seating:
    """One game of an iteration's plan."""

    seed: int
    players: tuple[Policy, Policy]
    trained: tuple[Seat, ...]
    """Seats whose decisions train the policy sitting there (the learner, or a learner co-player)."""
    group: int


def plan(config: RunConfig, iteration: int, learner: Policy, fixed: Policy | None,
         buffer: Sequence[Policy]) -> list[Seating]:
    """The games of ``iteration``: seed groups of K, co-players and trained seats (module docstring).

    ``fixed`` is a fixed co-player, or the second learner of ``coplayer: learner:CONFIG`` (None:
    self-play); ``buffer`` the past checkpoints to draw from.
    """
    rng = random.Random(f"{config.seed}:plan:{iteration}")
    K = config.credit.seed_group_size  # games per seed group
    second_learner = parse_agent(config.coplayer).kind == "learner"
    one_seat = (fixed is not None and not second_learner) or config.buffer.enabled
    games = []
    for group in range(config.train.games_per_iteration // K):
        seed = rng.getrandbits(31)
        coplayer = fixed
        if fixed is None and config.buffer.enabled and buffer and rng.random() < config.buffer.prob:
            coplayer = buffer[rng.randrange(len(buffer))]
        seat: Seat = group % 2
        players = (learner, coplayer or learner) if seat == 0 else (coplayer or learner, learner)
        trained: tuple[Seat, ...] = (seat,) if one_seat else (0, 1)
        games.extend(Seating(seed, players, trained, group) for _ in range(K))
    return games


def training_rows(seatings: Sequence[Seating]) -> list[tuple[int, Seat]]:
    """``(slot, seat)`` of every trained seat, ordered so that each block of K
    consecutive rows shares one seed group and one seat (the leave-one-out groups)."""
    rows = []
    groups: dict[int, list[int]] = {}
    for slot, seating in enumerate(seatings):
        groups.setdefault(seating.group, []).append(slot)
    for slots in groups.values():
        for seat in seatings[slots[0]].trained:
            rows.extend((slot, seat) for slot in slots)
    return rows


def coplayer_policy(config: RunConfig, game: Game, lm: LoRAModel) -> Policy | None:
    """The fixed co-player ``config.coplayer`` names (None for self-play): ``base`` acts with ``lm``'s
    adapters off, a ``model:`` agent on ``lm``'s base model reuses it. The trainer and every rollout
    worker build it with this one function, so it has the same name and settings everywhere."""
    name = config.coplayer
    if name == "self":
        return None
    if name == "base":
        return LLMPolicy(lm, None, name="base", **config.agent.policy_options())
    return make_agent(name, game, models={config.agent.model: lm}, endpoints=config.endpoints,
                      api_cache=config.api_cache)
