"""One game played step by step: a policy in one seat, answers from outside in the other.

:func:`~detente.rollout.play.play` runs whole batches and asks every seat through its policy; a web
page cannot be asked, it answers later. A :class:`Match` holds one game and the policy of one seat,
and waits for the other seat (a person) between calls::

    match = Match(game, opponent, seat=0, seed=7)   # the opponent acts until seat 0 must act
    while not match.done:
        error = match.answer(text)                   # None, or why the text was refused
    match.transcript()                               # the game as detente report shows it

The policy's seat is answered exactly as in ``play`` (:func:`~detente.rollout.play.decide`: re-asked
with the parser's reason, then the fallback); the outside seat's text is parsed by the game, and a
refused text changes nothing but :attr:`Turn.retry`, so a person may try as often as they like.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from detente.games.base import SEATS, Action, ActionSpec, Game, ParseError, Seat, other
from detente.policies.base import Decision, Policy
from detente.rollout.play import DecisionRecord, Episode, decide, transcript
from detente.runs import TranscriptLine

OUTSIDE = "human"
"""The name of the outside seat in transcripts."""


@dataclass(frozen=True)
class Turn:
    """What the outside seat must do now."""

    spec: ActionSpec
    retry: ParseError | None = None
    """Why its last answer to this same decision was refused, if it was."""


class Match:
    """A game between ``opponent`` and an outside seat ``seat``, advanced one answer at a time.

    The game is reset with ``seed`` (and the opponent's randomness seeded from it, as in ``play``);
    the opponent then acts until the outside seat is pending or the game is over. ``opponent.end()``
    is called when the game ends.
    """

    def __init__(self, game: Game, opponent: Policy, seat: Seat, seed: int, max_tries: int = 3) -> None:
        if seat not in SEATS:
            raise ValueError(f"seat must be 0 or 1, got {seat}")
        self.game, self.seat, self.seed = game, seat, seed
        self.max_tries = max_tries
        seating: list[Policy] = [opponent, opponent]
        seating[seat] = _Outside()
        self.seating = (seating[0], seating[1])
        game.reset(seed)
        opponent.begin(1)
        self.episode = Episode(game, (self.seating[0].name, self.seating[1].name))
        self._rngs = tuple(random.Random(f"{seed}:{s}") for s in SEATS)
        self._chosen: dict[Seat, Action] = {}
        self._tries = 0
        self._turn: Turn | None = None
        self._advance()

    @property
    def opponent(self) -> Policy:
        return self.seating[other(self.seat)]

    @property
    def done(self) -> bool:
        return self.game.done

    @property
    def turn(self) -> Turn | None:
        """The outside seat's pending decision; None once the game is over."""
        return self._turn

    def answer(self, raw: str) -> ParseError | None:
        """The outside seat's raw action text for :attr:`turn`: taken (the game moves on, the opponent
        acts until the outside seat is pending again) and None, or refused with the game's reason and
        nothing changed. ``RuntimeError`` when the game is over (a caller's bug)."""
        if self._turn is None:
            raise RuntimeError("the game is over: there is nothing to answer")
        self._tries += 1
        parsed = self.game.parse(self.seat, raw)
        if isinstance(parsed, ParseError):
            self._turn = Turn(self._turn.spec, parsed)
            return parsed
        record = DecisionRecord(self.game.round, self.seat, raw, parsed, True, self._tries)
        self.episode.decisions.append(record)
        self._chosen[self.seat] = parsed
        self._tries = 0
        self._advance()
        return None

    def transcript(self) -> TranscriptLine:
        """The game so far as one transcript line (players, rewards, decisions, the opponent's chat)."""
        return transcript(self.episode, self.seating, 0, seed=self.seed)

    def _advance(self) -> None:
        """Let the opponent act and step the game until the outside seat must act or the game ends."""
        while True:
            pending = self.game.pending()
            if not pending:
                self._turn = None
                self.opponent.end()
                return
            asks = [Decision(self.game, s, spec, 0, self._rngs[s]) for s, spec in pending.items()
                    if s != self.seat and s not in self._chosen]
            for ask, record in decide(asks, [self.seating], self.max_tries):
                self._chosen[ask.seat] = record.action
                self.episode.decisions.append(record)
            if self.seat in pending and self.seat not in self._chosen:
                self._turn = Turn(pending[self.seat])
                return
            self.game.step(dict(self._chosen))
            self._chosen = {}


class _Outside(Policy):
    """Holds the outside seat in the seating: named, keeps no chat, never asked."""

    name = OUTSIDE

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        raise RuntimeError("the outside seat of a Match is answered through Match.answer")
