"""The Axelrod bridge: any detente IPD agent plays as an ``axelrod.Player`` (optional extra).

``pip install 'detente[axelrod]'`` installs the Axelrod library (Knight et
al., "An open reproducible framework for the study of the iterated
prisoner's dilemma", JORS 2016). Then

* :class:`DetentePlayer` wraps any detente :class:`~detente.policies.base.Policy`
  of the IPD — a scripted strategy (``tft``), a tabular run (``run:DIR``), a
  language model or an LLM run (``model:NAME``, ``run:DIR@N``) — as an
  ``axelrod.Player`` that can enter any Axelrod match or tournament;
* :func:`axelrod_tournament` plays it in an Axelrod round robin against named
  Axelrod strategies and returns its rank; ``detente eval --axelrod`` is the
  command line of it.

**What the player sees.** Each Axelrod match is mirrored, move by move, in a
detente :class:`~detente.games.ipd.MatrixGame` whose payoff table is the
match's (Axelrod's default R, P, S, T = 3, 1, 0, 5 is exactly detente's
``prisoners_dilemma``) and whose ``n_rounds`` is the match's ``turns``.
Before each move the previous turn's two moves (as Axelrod recorded them,
after any noise) are stepped into that game, and the policy is asked through
a :class:`~detente.policies.base.Decision` on it, exactly as
:func:`detente.rollout.play.play` asks (retries with the parser's reason,
then the game's fallback, cooperate). So a language model receives the same
chat as in a detente game: the rules and payoff table, then "The other agent
played <B> last round." each turn; ``<A>`` is Axelrod's C, ``<B>`` its D.
Scripted and tabular agents read the game's structured view.

A new match (Axelrod resets players before each one) starts a fresh detente
game and calls ``policy.begin(1)``: the policy's per-game state (an LLM's
chat, slot 0) is cleared. When the detente agent meets itself (Axelrod round
robins include self-play) the two copies share the policy and sit in seats 0
and 1 of that slot, as in a detente self-play game. The policy's random draws
come from the decision's stream, seeded by Axelrod's per-match seed, so a
tournament with a seed is reproducible (language models too: they sample
with that stream).

**Limits.**

* Game length: detente's IPD prompt never states the number of rounds, so the
  agent does not know the Axelrod match length (Axelrod's own strategies may:
  they get ``match_attributes["length"]``). Agents trained on detente's
  10-round games play Axelrod's 200-turn matches out of distribution, and an
  LLM's chat grows with every turn (SmolLM2: 41 tokens a turn): use
  ``--turns`` to shorten matches for language models.
* Only the IPD: Axelrod plays 2x2 games with two actions; detente's other
  games have no Axelrod counterpart.
* Strategies that inspect or manipulate their opponent's source or state
  (Axelrod's "cheaters"; in Axelrod 4.14 only ``Darwin``) are refused: such a
  strategy may call the detente agent outside the match and disturb its chat.
* Matches are played serially in this process (Axelrod's ``processes``
  unset): the wrapped policy, e.g. a language model, is shared by all clones
  of the player, never copied, and one clone plays at a time (two in
  self-play, one per seat).

**Scores and rank** are Axelrod's: a player's score in a repetition is its
mean payoff per turn over its matches against the *other* players (its
self-play match is played but not scored: Axelrod's "normalised score"), and
players are ranked by the median of that score over repetitions. Ties keep
the entry order, and the detente agent enters last, so a tie never ranks it
higher. Deterministic matches are played once and reused for the other
repetitions (Axelrod's deterministic cache).
"""

from __future__ import annotations

import difflib
import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import axelrod as axl

from detente.agents import make_agent
from detente.errors import ConfigError
from detente.games import make_game
from detente.games.base import Choice, Seat, other
from detente.games.ipd import COOPERATE, DEFECT, MatrixGame, PayoffTable
from detente.policies.base import Decision, Policy
from detente.rollout.play import DecisionRecord, decide

DEFAULT_STRATEGIES: tuple[str, ...] = (
    "Cooperator", "Defector", "Random", "TitForTat", "Grudger", "FirstByShubik", "FirstByJoss",
)
"""Classic, cheap Axelrod strategies: TitForTat, Grudger, Shubik, Joss and Random entered
Axelrod's first tournament (1980); Cooperator and Defector are the two extremes."""
DEFAULT_TURNS = 200
"""Turns per match: Axelrod's default (and the length of his first tournament's matches)."""
DEFAULT_REPETITIONS = 10
UNKNOWN_LENGTH = 10**9
"""``n_rounds`` of the mirror game when the match length is not known (``prob_end`` matches)."""

_TO_AXELROD = {COOPERATE: axl.Action.C, DEFECT: axl.Action.D}
_FROM_AXELROD = {axl.Action.C: COOPERATE, axl.Action.D: DEFECT}


class DetentePlayer(axl.Player):
    """A detente policy playing Axelrod matches (see the module docstring for what it sees).

    ``policy``: any policy that plays the IPD (:func:`detente.agents.make_agent`
    with an ``ipd`` game builds one from a name). Clones share it: Axelrod
    clones a player for each match from ``init_kwargs``, and the policy is
    passed by reference, never copied. ``max_tries``: as in
    :func:`detente.rollout.play.play`. ``stats``: a counter shared by all
    clones (``matches``, ``decisions``, ``invalid``); a fresh one if None.

    After (or during) a match, ``decisions`` holds this match's
    :class:`~detente.rollout.play.DecisionRecord` list and ``game`` the
    mirror game.
    """

    name = "detente"
    classifier = {  # noqa: RUF012 - Axelrod's own layout; copied per instance by axl.Player
        "memory_depth": float("inf"),
        "stochastic": True,
        "makes_use_of": set(),
        "long_run_time": True,
        "inspects_source": False,
        "manipulates_source": False,
        "manipulates_state": False,
    }

    def __init__(self, policy: Policy, name: str | None = None, max_tries: int = 3,
                 stats: Counter[str] | None = None) -> None:
        super().__init__()
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.policy = policy
        self.name = name or f"detente:{policy.name}"
        self.max_tries = max_tries
        self.stats: Counter[str] = Counter() if stats is None else stats
        self.classifier = {**self.classifier, **_classify(policy)}
        self.game: MatrixGame | None = None
        self.seat: Seat = 0
        self.decisions: list[DecisionRecord] = []
        self._rng: random.Random | None = None
        self._opponent: axl.Player | None = None
        self._offset = 0
        """Length of ``history`` when the mirror game started (0 unless a match runs without reset)."""

    def __repr__(self) -> str:
        return self.name

    def strategy(self, opponent: axl.Player) -> axl.Action:
        game = self.game
        if (game is None or opponent is not self._opponent
                or len(self.history) < self._offset + len(game.moves)):
            game = self._start(opponent)
        assert self._rng is not None
        history = list(zip(self.history, self.history.coplays, strict=True))
        for own, theirs in history[self._offset + len(game.moves):]:  # the last turn, or none
            game.step({self.seat: Choice(_FROM_AXELROD[own]),
                       other(self.seat): Choice(_FROM_AXELROD[theirs])})
        if game.done:
            raise RuntimeError(f"{self.name}: the match runs past its length {game.n_rounds} "
                               "(match_attributes['length'] is shorter than the match)")
        spec = game.pending()[self.seat]
        decision = Decision(game, self.seat, spec, slot=0, rng=self._rng)
        [(_, record)] = decide([decision], [(self.policy, self.policy)], self.max_tries)
        assert isinstance(record.action, Choice)
        self.decisions.append(record)
        self.stats["decisions"] += 1
        self.stats["invalid"] += not record.valid
        return _TO_AXELROD[record.action.index]

    def _start(self, opponent: axl.Player) -> MatrixGame:
        """A fresh mirror game for a new match; seat 1 if the other seat is this policy's own copy."""
        attributes = self.match_attributes
        length = attributes.get("length", -1)
        known = isinstance(length, int | float) and 0 < length < math.inf
        n_rounds = int(length) if known else UNKNOWN_LENGTH
        seed = int(getattr(self, "_seed", 0))  # Axelrod seeds stochastic players per match
        twin = (isinstance(opponent, DetentePlayer) and opponent is not self
                and opponent.policy is self.policy and opponent.game is not None
                and opponent._opponent is self and len(opponent.history) == len(self.history)
                and not opponent.game.moves)
        self.seat = other(opponent.seat) if twin else 0
        if not twin:
            self.policy.begin(1)
        game = MatrixGame(_payoffs(attributes.get("game")), n_rounds=n_rounds)
        game.reset(seed)
        self.game = game
        self._rng = random.Random(f"{seed}:{self.seat}")
        self._opponent = opponent
        self._offset = len(self.history)
        self.decisions = []
        self.stats["matches"] += 1
        return game


def _payoffs(game: Any) -> PayoffTable:
    """The detente payoff table of an Axelrod game (default: Axelrod's, = detente's IPD)."""
    r, p, s, t = (float(x) for x in (game or axl.DefaultGame).RPST())
    return (((r, r), (s, t)), ((t, s), (p, p)))


def _classify(policy: Policy) -> dict[str, Any]:
    """Axelrod classifiers that detente knows for sure; anything else stays conservative."""
    from detente.policies.scripted.base import Scripted
    from detente.policies.tabular import TabularPolicy

    if isinstance(policy, Scripted):
        return {"memory_depth": policy.memory_depth, "stochastic": policy.stochastic,
                "long_run_time": False}
    if isinstance(policy, TabularPolicy):
        probs = policy.cooperate_prob
        return {"memory_depth": 0 if len(set(probs)) == 1 else 1,
                "stochastic": any(0.0 < q < 1.0 for q in probs), "long_run_time": False}
    return {}


# ---------------------------------------------------------------- Axelrod strategies by name
def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _strategy_index() -> dict[str, type[axl.Player]]:
    index: dict[str, type[axl.Player]] = {}
    for cls in axl.all_strategies:
        index.setdefault(_key(cls.__name__), cls)
        index.setdefault(_key(cls.name), cls)
    return index


def resolve_strategy(name: str) -> axl.Player:
    """An instance of the Axelrod strategy called ``name``: its class name (``TitForTat``) or
    display name (``Tit For Tat``), case and punctuation ignored. ``ValueError`` for an unknown
    name (with close matches) or a strategy that reads or changes its opponent's source."""
    index = _strategy_index()
    cls = index.get(_key(name))
    if cls is None:
        names = sorted({c.__name__ for c in axl.all_strategies})
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        close += [n for n in names if _key(name) and _key(name) in _key(n) and n not in close][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown Axelrod strategy {name!r}{hint} "
                         f"(any class in axelrod.strategies, {len(names)} in all)")
    player = cls()
    if not axl.Classifiers.obey_axelrod(player):
        raise ConfigError(f"Axelrod strategy {name!r} ({player.name}) inspects or manipulates its "
                         "opponent's source or state; it cannot play a detente agent")
    return player


# ---------------------------------------------------------------- the tournament
@dataclass(frozen=True)
class AxelrodStanding:
    """One player's result in the round robin; scores are per turn, over all its matches."""

    name: str
    rank: int
    median_score: float
    """Median over repetitions of the mean payoff per turn against the other players
    (Axelrod's normalised score, self-play not counted): the ranking criterion."""
    mean_score: float
    """Mean over repetitions of the same score."""
    cooperation_rate: float
    wins: float
    """Mean number of matches won per repetition."""


@dataclass(frozen=True)
class AxelrodResult:
    """The detente agent's standing in an Axelrod round robin."""

    agent: str
    rank: int
    """1-based position of ``agent`` in ``ranked_names`` (ties are ranked by entry order,
    and the detente agent enters last, so a tie never ranks it higher)."""
    ranked_names: list[str]
    standings: list[AxelrodStanding]
    """In rank order."""
    strategies: list[str]
    turns: int
    repetitions: int
    seed: int
    decisions: int
    """Moves the detente agent made in the tournament (self-play counts both copies)."""
    invalid: int
    """Of those, replies still unparseable after retries (the fallback, C, was played)."""

    @property
    def n_players(self) -> int:
        return len(self.ranked_names)

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "rank": self.rank, "players": self.n_players,
            "turns": self.turns, "repetitions": self.repetitions, "seed": self.seed,
            "strategies": self.strategies, "ranked_names": self.ranked_names,
            "decisions": self.decisions, "invalid": self.invalid,
            "scores": "mean payoff per turn against the other players (Axelrod's normalised "
                      "score, self-play not counted); ranked by the median over repetitions",
            "standings": [asdict(s) for s in self.standings],
            "axelrod_version": axl.__version__,
        }


def axelrod_tournament(
    agent: str | Policy,
    strategies: Sequence[str] | None = None,
    turns: int = DEFAULT_TURNS,
    repetitions: int = DEFAULT_REPETITIONS,
    seed: int = 0,
) -> AxelrodResult:
    """Play ``agent`` in an Axelrod round robin (self-play included) against ``strategies``.

    ``agent``: a detente agent name (``tft``, ``run:DIR``, ``model:NAME``;
    built for the IPD by :func:`detente.agents.make_agent`) or a policy.
    ``strategies``: Axelrod strategy names (:func:`resolve_strategy`),
    default :data:`DEFAULT_STRATEGIES`. ``ValueError`` for an unknown agent
    or strategy, a repeated strategy, or bad ``turns`` / ``repetitions``.
    """
    if turns < 1 or repetitions < 1:
        raise ConfigError(f"turns and repetitions must be >= 1, got {turns} and {repetitions}")
    names = list(DEFAULT_STRATEGIES if strategies is None else strategies)
    if not names:
        raise ConfigError("name at least one Axelrod strategy")
    opponents = [resolve_strategy(n) for n in names]
    shown = [str(p) for p in opponents]
    repeated = sorted({s for s in shown if shown.count(s) > 1})
    if repeated:
        raise ConfigError(f"each Axelrod strategy may be named only once: {', '.join(repeated)}")
    policy = make_agent(agent, make_game("ipd")) if isinstance(agent, str) else agent
    stats: Counter[str] = Counter()
    player = DetentePlayer(policy, stats=stats)
    if player.name in shown:
        raise ConfigError(f"the detente agent's name {player.name!r} is also an Axelrod strategy's")
    players = [*opponents, player]  # last: a tie in score never ranks the detente agent higher
    results = axl.Tournament(players, turns=turns, repetitions=repetitions, seed=seed).play(
        processes=None, progress_bar=False)  # None: serial, in this process
    standings = []
    for position, i in enumerate(results.ranking, start=1):
        scores = [float(x) for x in results.normalised_scores[i]]
        wins = results.wins[i]
        standings.append(AxelrodStanding(
            name=str(players[i]), rank=position, median_score=statistics.median(scores),
            mean_score=sum(scores) / len(scores),
            cooperation_rate=float(results.cooperating_rating[i]),
            wins=float(sum(wins)) / len(wins),
        ))
    ranked = [str(name) for name in results.ranked_names]
    return AxelrodResult(
        agent=player.name, rank=ranked.index(player.name) + 1, ranked_names=ranked,
        standings=standings, strategies=names, turns=turns, repetitions=repetitions, seed=seed,
        decisions=stats["decisions"], invalid=stats["invalid"],
    )
