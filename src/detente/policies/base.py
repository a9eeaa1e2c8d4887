"""The policy protocol: a batch of decisions in, a batch of raw texts out.

Every kind of player — scripted strategy, tabular learner, language model,
API model, human — is a :class:`Policy`. The rollout hands it all the
decisions it must make at one moment, across every game of a batch, so a
language model can answer them in one batched forward. Replies are raw text
that the game parses, exactly as it would parse a person's typing.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from detente.games.base import ActionSpec, Game, ParseError, Seat


@dataclass(frozen=True)
class Decision:
    """One seat of one game that must act now."""

    game: Game
    seat: Seat
    spec: ActionSpec
    slot: int
    """Index of the game within the batch: a key for per-game state such as a chat."""
    rng: random.Random
    """A stream of randomness private to this (game, seat), seeded from the game's seed."""
    retry: ParseError | None = None
    """Why this seat's previous answer to the same decision was rejected, if it was."""

    @property
    def observation(self) -> str:
        return self.game.observation(self.seat)


class Policy(ABC):
    """Maps a batch of decisions to a batch of raw action texts."""

    name: str = "policy"
    reask_until_valid: bool = False
    """True for a person: the play loop asks again after every answer that does not parse, however many
    tries that takes (a person leaves by quitting, :class:`~detente.policies.human.PlayerQuit`), instead
    of taking the fallback after ``max_tries``."""

    def begin(self, n_slots: int) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called before a batch of ``n_slots`` games starts (reset per-game state here)."""

    def end(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called after the last decision of a batch: free what only acting needed (caches);
        what the batch recorded stays readable."""

    @abstractmethod
    def act(self, decisions: Sequence[Decision]) -> list[str]:
        """Return one raw text per decision, in order."""

    def chat(self, slot: int, seat: Seat) -> list[dict[str, str]] | None:
        """The chat this policy kept as ``seat`` of game ``slot`` of the last batch (role/content
        messages), or None for a policy that keeps none."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
