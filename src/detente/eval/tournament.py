"""Cross-play tournaments: every agent against every agent, in both seats.

Each unordered pair {i, j} (self-pairs included) plays ``games_per_pair``
games with seeds ``seed, seed+1, ...``; game k seats agent i in seat k mod 2,
so both seats are covered and every cell shares the same environment seeds
(common random numbers). Cell (i, j) is the mean per-round reward of the row
agent i against j, with a 95% confidence interval 1.96 * sd / sqrt(n) over
the games' per-round means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from detente.behaviour import Figures, behaviour
from detente.behaviour.figures import Rate
from detente.games.base import Game, Seat
from detente.policies.base import Policy
from detente.rollout.play import Episode, play, transcript
from detente.runs import CrossPlayRecord, CrossPlayStats, TranscriptLine

Z95 = 1.96


@dataclass
class CrossPlay:
    """The result of a tournament: what ``matrix.json`` holds, and the games kept as transcripts."""

    record: CrossPlayRecord
    transcripts: list[TranscriptLine] = field(default_factory=list)
    """The first games of every pairing (:func:`detente.rollout.play.transcript`)."""


def cross_play(
    make_game: Callable[[], Game],
    agents: dict[str, Policy],
    games_per_pair: int,
    seed: int = 0,
    on_pair_done: Callable[[], None] | None = None,
    transcripts: int = 0,
) -> CrossPlay:
    """Play the full tournament between ``agents`` (name -> policy), keeping the first ``transcripts``
    games of every pairing as transcript lines."""
    check_tournament(list(agents), games_per_pair)
    names = list(agents)
    results = []
    for i, j in pairings(len(names)):
        results.append(play_pairing(make_game, agents[names[i]], agents[names[j]], games_per_pair, seed,
                                    transcripts))
        if on_pair_done is not None:
            on_pair_done()
    return tally(make_game, names, results, games_per_pair)


def check_tournament(names: Sequence[str], games_per_pair: int) -> None:
    """``ValueError`` unless there is an agent and at least one game per pairing."""
    if games_per_pair < 1:
        raise ValueError(f"games_per_pair must be >= 1, got {games_per_pair}")
    if not names:
        raise ValueError("a tournament needs at least one agent")


def pairings(n: int) -> list[tuple[int, int]]:
    """Every unordered pair ``(i, j)``, ``i <= j``, of ``n`` agents, in the order the matrix is filled."""
    return [(i, j) for i in range(n) for j in range(i, n)]


@dataclass
class PairGames:
    """What one pairing gave: each game with its seat order (:func:`play_pair`), and the transcripts
    of its first games."""

    games: list[tuple[Episode, tuple[int, int]]]
    transcripts: list[TranscriptLine]


def play_pairing(make_game: Callable[[], Game], first: Policy, second: Policy, games_per_pair: int,
                 seed: int, transcripts: int) -> PairGames:
    """The games of one pairing (:func:`play_pair`) and the first ``transcripts`` of them as lines."""
    games = play_pair(make_game, first, second, games_per_pair, seed)
    agents = (first, second)
    lines = [transcript(episode, (agents[order[0]], agents[order[1]]), k, seed=seed + k)
             for k, (episode, order) in enumerate(games[:transcripts])]
    return PairGames(games, lines)


def tally(make_game: Callable[[], Game], names: Sequence[str], results: Sequence[PairGames],
          games_per_pair: int) -> CrossPlay:
    """The tournament record of ``results``, one per pairing in :func:`pairings` order: every cell's
    mean and interval, welfare, efficiency, invalid rates and behaviour; the transcripts in order."""
    n = len(names)
    cells = [[_Cell() for _ in range(n)] for _ in range(n)]
    seat_games: list[list[tuple[Game, Seat]]] = [[] for _ in range(n)]  # per agent, all its games
    own_games: list[list[tuple[Game, Seat]]] = [[] for _ in range(n)]  # per agent, against itself
    other_games: list[list[tuple[Game, Seat]]] = [[] for _ in range(n)]  # per agent, against the rest
    invalid = [Rate() for _ in range(n)]  # per agent: hits = invalid decisions
    lines: list[TranscriptLine] = []
    for (i, j), result in zip(pairings(n), results, strict=True):
        lines.extend(result.transcripts)
        for episode, order in result.games:
            pair = tuple((i, j)[x] for x in order)
            game = episode.game
            returns = game.returns()
            for seat, agent in enumerate(pair):
                cells[agent][pair[1 - seat]].per_round.append(returns[seat] / game.n_rounds)
                seat_games[agent].append((game, seat))
                (own_games if i == j else other_games)[agent].append((game, seat))
                for decision in episode.decisions:
                    if decision.seat == seat:
                        invalid[agent].add(not decision.valid)
            for x, y in {pair, pair[::-1]}:
                cells[x][y].add(sum(returns), game.max_welfare(), game.n_rounds)

    mean_reward = [[c.mean for c in row] for row in cells]
    probe = make_game()
    record = CrossPlayRecord(
        game=probe.name, game_version=probe.version, agents=list(names), games_per_pair=games_per_pair,
        mean_reward=mean_reward, ci95=[[c.ci95 for c in row] for row in cells],
        stats=CrossPlayStats(
            welfare=[[c.total / c.rounds for c in row] for row in cells],
            efficiency=[[c.total / c.best if c.best else None for c in row] for row in cells],
            round_robin=[sum(row) / len(row) for row in mean_reward],
            invalid_rate=[c.value or 0.0 for c in invalid],
            behaviour=_behaviour(names, seat_games),
            self_play=_behaviour(names, own_games),
            versus_others=_behaviour(names, other_games),
        ),
    )
    return CrossPlay(record, lines)


def play_pair(
    make_game: Callable[[], Game], first: Policy, second: Policy, games: int, seed: int = 0
) -> list[tuple[Episode, tuple[int, int]]]:
    """``games`` games between two agents with seeds ``seed, seed+1, ...``; ``first`` sits in seat k mod 2
    of game k. Each episode comes with ``order``: ``order[seat]`` = 0 for ``first``, 1 for ``second``."""
    orders = [(0, 1) if k % 2 == 0 else (1, 0) for k in range(games)]
    agents = (first, second)
    episodes = play([make_game() for _ in orders], [(agents[a], agents[b]) for a, b in orders],
                    [seed + k for k in range(games)])
    return list(zip(episodes, orders, strict=True))


def mean_ci95(xs: Sequence[float]) -> tuple[float, float]:
    """Mean of ``xs`` and the half-width 1.96 * sd / sqrt(n) of its normal 95% interval (0 for n < 2)."""
    mu = sum(xs) / len(xs)
    if len(xs) < 2:
        return mu, 0.0
    var = sum((x - mu) ** 2 for x in xs) / (len(xs) - 1)
    return mu, Z95 * math.sqrt(var / len(xs))


@dataclass
class _Cell:
    """Running figures of one (row agent, column agent) cell."""

    per_round: list[float] = field(default_factory=list)
    """Row agent's mean per-round reward in each game."""
    total: float = 0.0
    best: float = 0.0
    rounds: int = 0

    def add(self, total: float, best: float, rounds: int) -> None:
        self.total += total
        self.best += best
        self.rounds += rounds

    @property
    def mean(self) -> float:
        return mean_ci95(self.per_round)[0]

    @property
    def ci95(self) -> float:
        """Half-width of the normal 95% interval of the mean; 0 for a single game."""
        return mean_ci95(self.per_round)[1]


def _behaviour(names: Sequence[str], seat_games: list[list[tuple[Game, Seat]]]) -> dict[str, Figures]:
    """Each agent's behaviour figures over all its games (:func:`detente.behaviour.behaviour`)."""
    return {name: behaviour(games) for name, games in zip(names, seat_games, strict=True) if games}
