"""Games: rules only (state, observation text, legal actions, parsing, rewards).

``make_game(name, **params)`` builds any registered game; ``GAMES`` lists them.

A game subclasses :class:`~detente.games.base.Game` as ``Game[A, V]``: ``A``
the actions it takes (``Choice``, ``Proposal``, ``Message`` or a union for a
game with phases), ``V`` what :meth:`~detente.games.base.Game.view` shows
scripted players. ``detente.games.testing.check_game(game, seeds=(0, 1, 2))``
checks a game against the whole contract of :mod:`detente.games.base` in one
call, as PettingZoo's ``parallel_api_test`` checks an environment: it plays
every seed with random legal actions, replays it, and raises
``AssertionError`` naming the check, the seed and the round that failed.
Every registered game passes it (``tests/test_game_conformance.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from detente.games.base import Game
from detente.games.deal import DealGame
from detente.games.ipd import MatrixGame
from detente.games.split import SplitGame
from detente.games.trust_split import TrustSplitGame

GAMES: dict[str, Callable[..., Game]] = {
    "ipd": partial(MatrixGame, "prisoners_dilemma"),
    "stag_hunt": partial(MatrixGame, "stag_hunt"),
    "chicken": partial(MatrixGame, "chicken"),
    "matrix": partial(MatrixGame, name="matrix"),
    "split": SplitGame,
    "trust_split": TrustSplitGame,
    "deal": DealGame,
}


def make_game(name: str, **params: Any) -> Game:
    """Build the game registered as ``name``; unknown names raise ``ValueError``."""
    if name not in GAMES:
        raise ValueError(f"unknown game {name!r}; known games: {', '.join(sorted(GAMES))}")
    return GAMES[name](**params)


def is_matrix_game(name: str) -> bool:
    """Whether the game registered as ``name`` is an iterated 2x2 matrix game (ipd, stag_hunt, ...)."""
    return isinstance(make_game(name), MatrixGame)
