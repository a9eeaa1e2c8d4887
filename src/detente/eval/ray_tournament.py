"""A cross-play tournament on Ray actors (``detente eval --ray``).

The units of work are the pairings (:func:`~detente.eval.tournament.pairings`).
Each is played by whichever worker is free, exactly as the local tournament
plays it (:func:`~detente.eval.tournament.play_pairing`: the same seeds, the
same seats, one batch), and the results are tallied in pairing order by the
same function (:func:`~detente.eval.tournament.tally`), so ``matrix.json`` is
the local one. (A language model's numbers also depend on torch's thread
count: a worker runs on as many threads as CPUs it reserves, one by default,
so a local run on one thread gives the very same file.)

A worker builds an agent the first time one of its pairings needs it, through
one :class:`~detente.agents.AgentPool`, so it holds each base model once
however many agents (``model:NAME``, ``run:DIR`` adapters) are built on it. A
worker that dies is replaced and its pairing played again
(:class:`~detente.rollout.ray_pool.WorkerPool`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from detente.agent_spec import OPPONENT_KINDS, check_kind, parse_agent
from detente.agents import AgentPool, check_agent
from detente.config import EndpointConfig, WorkerResources
from detente.errors import ConfigError
from detente.eval.tournament import CrossPlay, PairGames, check_tournament, pairings, play_pairing, tally
from detente.games import make_game
from detente.games.base import Game
from detente.policies.base import Policy
from detente.progress import OnProgress, silent
from detente.rollout.ray_pool import Worker, WorkerPool


class TournamentWorker(Worker):
    """The Ray actor: plays pairings of ``names`` in game ``game`` (with ``params``)."""

    def __init__(self, threads: int, game: str, params: dict[str, Any], names: list[str],
                 endpoints: Mapping[str, EndpointConfig], api_cache: bool) -> None:
        super().__init__(threads)
        self.game, self.params, self.names = game, params, names
        self.endpoints, self.api_cache = dict(endpoints), api_cache
        self.pool: AgentPool | None = None
        self.agents: dict[str, Policy] = {}

    def play(self, i: int, j: int, games_per_pair: int, seed: int, transcripts: int) -> PairGames:
        """Pairing (i, j), as :func:`~detente.eval.tournament.cross_play` plays it."""
        return play_pairing(self._new_game, self._agent(self.names[i]), self._agent(self.names[j]),
                            games_per_pair, seed, transcripts)

    def _new_game(self) -> Game:
        return make_game(self.game, **self.params)

    def _agent(self, name: str) -> Policy:
        if name not in self.agents:
            if self.pool is None:
                self.pool = AgentPool(self._new_game(), endpoints=self.endpoints, api_cache=self.api_cache)
            self.agents[name] = self.pool.make(name)
        return self.agents[name]


def ray_cross_play(game: str, params: dict[str, Any], names: Sequence[str], games_per_pair: int,
                   seed: int = 0, transcripts: int = 0, workers: int = 2,
                   resources: WorkerResources | None = None, on_progress: OnProgress = silent,
                   endpoints: Mapping[str, EndpointConfig] | None = None,
                   api_cache: bool = True) -> CrossPlay:
    """The tournament of :func:`~detente.eval.tournament.cross_play` between the agents ``names`` of
    ``game``, its pairings spread over ``workers`` Ray actors (at most one per pairing), each reserving
    ``resources`` (default one CPU); ``on_progress`` is told after each pairing. ``endpoints`` names the
    API endpoints of ``api:MODEL@NAME`` agents. Every name is checked here first, without loading a
    model."""
    names = list(names)
    check_tournament(names, games_per_pair)
    if len(set(names)) != len(names):
        raise ConfigError("each agent may be named only once")
    probe = make_game(game, **params)
    for name in names:
        spec = parse_agent(name)
        if spec.kind == "human":
            raise ConfigError(f"{name!r} plays at this terminal, not on a Ray worker: leave out --ray")
        check_agent(check_kind(spec, OPPONENT_KINDS, "--agents"), probe, endpoints=endpoints or {})
    units = [(i, j, games_per_pair, seed, transcripts) for i, j in pairings(len(names))]
    pool = WorkerPool(TournamentWorker, (game, params, names, endpoints or {}, api_cache),
                      min(workers, len(units)),
                      resources or WorkerResources(), "tournament worker")
    try:
        results = pool.map("play", units, "pairing", on_progress)
    finally:
        pool.close()
    return tally(lambda: make_game(game, **params), names, results, games_per_pair)
