"""Base class of scripted (hand-written) strategies.

A scripted strategy reads the game's structured :meth:`~detente.games.base.Game.view`
and returns the canonical text of its action. It keeps no state between
calls: everything it needs (its own and the other's past moves, revealed
hands) is in the view, so one object can play any number of games at once and
a replay with the same seed is identical. Randomness comes only from the
decision's private stream.

``Scripted[V]`` reads views of type ``V``: a family's base class names its
game's view once (``MatrixStrategy(Scripted[MatrixView])``) and every rule in
it is typed.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from detente.games.base import ActionSpec, Game
from detente.policies.base import Decision, Policy

V = TypeVar("V")
"""The view type of the game family a strategy plays (what ``game.view(seat)`` returns)."""


class Scripted(Policy, Generic[V]):
    """A fixed strategy for one family of games.

    Metadata (Axelrod-style) lets tests and tournaments select strategies:
    ``memory_depth`` is how many past rounds the rule looks at
    (``float("inf")`` for all of them) and ``stochastic`` whether it draws
    random numbers.
    """

    short_name: ClassVar[str]
    """Command-line name, e.g. ``"tft"``."""
    game_type: ClassVar[type[Game[Any, Any]]]
    """The game class this strategy plays (its views are ``V``; a ClassVar cannot say so)."""
    memory_depth: ClassVar[float]
    stochastic: ClassVar[bool] = False

    def __init__(self) -> None:
        self.name = self.short_name

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        return [self.respond(d.game.view(d.seat), d.spec, d.rng) for d in decisions]

    @abstractmethod
    def respond(self, view: V, spec: ActionSpec, rng: random.Random) -> str:
        """The canonical text of this strategy's action given what its seat knows."""
