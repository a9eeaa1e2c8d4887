"""Games in memory for ``detente serve``: one :class:`Session` per game, found by an unguessable id.

A session holds a :class:`~detente.rollout.step.Match` (the game and the opponent's policy) and the
lines the person has been shown (:attr:`Session.log`). What a person types goes through
:func:`~detente.policies.human.interpret`, then the game's parser; a refusal is kept as the turn's
reason and changes nothing else. :meth:`Session.state` is what the page sees: only what the game has
told the person's seat, the decisions of finished rounds, the scores.

:class:`Sessions` keeps at most ``limit`` games: a game idle for ``idle_s`` seconds is dropped, and a
new game over the limit drops the least recently used one. One lock serialises every change, so the
opponents' policies act one at a time (a language model must not be called from two threads) and
two requests never interleave in one game. A finished game is saved (:func:`detente.runs.write_game`)
under ``save_root``, where ``detente report`` shows it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from detente.agent_spec import parse_agent
from detente.agents import make_agent
from detente.errors import ConfigError, UserError
from detente.games import make_game
from detente.games.base import ChoiceSpec, Message, MessageSpec, ProposalSpec, other
from detente.policies.human import hint, interpret
from detente.rollout.play import DecisionRecord
from detente.rollout.step import Match, Turn
from detente.runs import new_game_folder, write_game

if TYPE_CHECKING:
    from detente.policies.llm_backend import LoRAModel

LIMIT = 100
"""Games kept in memory at most."""
IDLE_S = 30 * 60.0
"""Seconds without a request after which a game is dropped."""


class SessionNotFound(UserError):
    """No game has this id (never started, idle too long, dropped for newer games, or a restart)."""


# ---------------------------------------------------------------- what the page sees
class LogLine(BaseModel):
    """One line of the page's transcript: what the game told the person, or what they did."""

    who: Literal["game", "you"]
    round: int
    """1-based round the line belongs to."""
    text: str


class TurnView(BaseModel):
    """The person's pending decision."""

    kind: Literal["choice", "proposal", "message"]
    hint: str
    max_chars: int | None
    """Messages: the game's limit on their length."""
    refused: str | None
    """Why the last answer to this decision was not accepted."""


class RoundView(BaseModel):
    """A finished round: each side's actions, as the game took them, and points."""

    round: int
    you: list[str]
    them: list[str]
    points: tuple[float, float]
    """(you, them)."""


class GameState(BaseModel):
    """A game as the page shows it."""

    id: str
    game: str
    opponent: str
    seat: int
    seed: int
    log: list[LogLine]
    rounds: list[RoundView]
    score: tuple[float, float]
    """(you, them) so far."""
    turn: TurnView | None
    done: bool
    saved: str | None
    """Where the finished game was saved, if it was."""


# ---------------------------------------------------------------- one game
@dataclass
class Session:
    """One person's game against one opponent."""

    id: str
    game_name: str
    opponent_name: str
    match: Match
    last_used: float
    log: list[LogLine] = field(default_factory=list)
    saved: Path | None = None

    def __post_init__(self) -> None:
        self._news()

    def answer(self, typed: str) -> None:
        """Take what the person typed for the pending decision, or keep the game's reason on the turn."""
        turn = self.match.turn
        if turn is None:
            raise UserError("this game is over; start a new one")
        before = len(self.match.episode.decisions)
        if self.match.answer(interpret(turn.spec, typed)) is None:
            mine = next(d for d in self.match.episode.decisions[before:] if d.seat == self.match.seat)
            self.log.append(LogLine(who="you", round=mine.round + 1, text=_shown(mine)))
            self._news()

    def state(self) -> GameState:
        match, seat = self.match, self.match.seat
        game = match.game
        rounds = []
        for t, rewards in enumerate(game.round_rewards):
            played = [d for d in match.episode.decisions if d.round == t]
            rounds.append(RoundView(round=t + 1, you=[_shown(d) for d in played if d.seat == seat],
                                    them=[_shown(d) for d in played if d.seat != seat],
                                    points=(rewards[seat], rewards[other(seat)])))
        returns = game.returns()
        return GameState(
            id=self.id, game=self.game_name, opponent=self.opponent_name, seat=seat, seed=match.seed,
            log=list(self.log), rounds=rounds, score=(returns[seat], returns[other(seat)]),
            turn=None if match.turn is None else _turn_view(match.turn),
            done=match.done, saved=None if self.saved is None else str(self.saved),
        )

    def _news(self) -> None:
        """Log what the game told the person's seat since it last acted (nothing new: nothing)."""
        news = self.match.game.observation(self.match.seat)
        if news:
            round_ = min(self.match.game.round, self.match.game.n_rounds - 1) + 1
            self.log.append(LogLine(who="game", round=round_, text=news))


def _shown(decision: DecisionRecord) -> str:
    """A decision as the page shows it: a message's text, else the action text the game took."""
    return decision.action.text if isinstance(decision.action, Message) else decision.raw


_KINDS: dict[type, Literal["choice", "proposal", "message"]] = {
    ChoiceSpec: "choice", ProposalSpec: "proposal", MessageSpec: "message"}


def _turn_view(turn: Turn) -> TurnView:
    spec = turn.spec
    return TurnView(kind=_KINDS[type(spec)], hint=hint(spec),
                    max_chars=spec.max_chars if isinstance(spec, MessageSpec) else None,
                    refused=None if turn.retry is None else turn.retry.reason)


# ---------------------------------------------------------------- the store
class Sessions:
    """Every game in memory, by id; see the module docstring for the limits."""

    def __init__(self, limit: int = LIMIT, idle_s: float = IDLE_S, save_root: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or idle_s <= 0:
            raise ValueError(f"need limit >= 1 and idle_s > 0, got {limit} and {idle_s}")
        self.limit, self.idle_s, self.save_root, self.clock = limit, idle_s, save_root, clock
        self.models: dict[str, LoRAModel] = {}
        """Base models loaded for ``model:`` / ``run:`` opponents, shared by every game."""
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, game: str, against: str, seat: int = 0, params: dict[str, Any] | None = None,
              seed: int | None = None) -> GameState:
        """A new game of ``game`` (with ``params``) against the agent ``against``, the person in
        ``seat`` (a random ``seed`` if None); its state once the opponent has acted until the person
        must. :class:`ConfigError` for a game or an agent that cannot be played."""
        if parse_agent(against).kind == "human":
            raise ConfigError("the other player must be an agent: a scripted name, run:DIR[@N], model:NAME")
        try:
            board = make_game(game, **(params or {}))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"game {game!r}: {error}") from None
        seed = secrets.randbelow(2**31) if seed is None else seed
        with self._lock:
            opponent = make_agent(against, board, self.models)
            now = self.clock()
            self._drop_idle(now)
            if len(self._sessions) >= self.limit:
                del self._sessions[min(self._sessions.values(), key=lambda s: s.last_used).id]
            match = Match(board, opponent, seat, seed)
            session = Session(secrets.token_urlsafe(24), game, against, match, now)
            self._sessions[session.id] = session
            self._save_if_done(session)
            return session.state()

    def answer(self, session_id: str, typed: str) -> GameState:
        """The person's text for their pending decision in game ``session_id``; the game's new state."""
        with self._lock:
            session = self._find(session_id)
            session.answer(typed)
            self._save_if_done(session)
            return session.state()

    def state(self, session_id: str) -> GameState:
        with self._lock:
            return self._find(session_id).state()

    def _find(self, session_id: str) -> Session:
        now = self.clock()
        self._drop_idle(now)
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound("no such game: it was idle too long, dropped for newer games, or the "
                                  "server restarted; start a new one")
        session.last_used = now
        return session

    def _drop_idle(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now - s.last_used > self.idle_s]:
            del self._sessions[key]

    def _save_if_done(self, session: Session) -> None:
        if session.match.done and session.saved is None and self.save_root is not None:
            folder = new_game_folder(self.save_root)
            write_game(folder, session.match.game, session.match.transcript())
            session.saved = folder
