"""Scripted strategies for every game, found by short name.

``make_scripted("tft", game)`` returns the strategy called ``tft`` for that
game's family; ``"random:0.3"`` passes a parameter. :func:`scripted_names`
lists what a game can be played with.
"""

from __future__ import annotations

from detente.errors import ConfigError
from detente.games.base import Game
from detente.games.deal import DealGame
from detente.games.ipd import MatrixGame
from detente.games.split import SplitGame
from detente.games.trust_split import TrustSplitGame
from detente.policies.scripted.base import Scripted
from detente.policies.scripted.deal import STRATEGIES as DEAL
from detente.policies.scripted.matrix import STRATEGIES as MATRIX
from detente.policies.scripted.split import STRATEGIES as SPLIT
from detente.policies.scripted.trust_split import STRATEGIES as TRUST_SPLIT

REGISTRY: tuple[type[Scripted], ...] = (*MATRIX, *SPLIT, *TRUST_SPLIT, *DEAL)
STANDARD_OPPONENTS: dict[type[Game], tuple[str, ...]] = {
    MatrixGame: ("alld", "allc", "tft"),
    SplitGame: ("greedy", "welfare", "fair"),
    TrustSplitGame: ("greedy", "truthful", "liar"),
    DealGame: ("greedy", "fair"),
}
"""The field a trained agent meets in its final cross-play when its config names none: the greedy
strategy of the game, the cooperative one, and a reciprocating / middle one."""


def standard_opponents(game: Game) -> list[str]:
    """The :data:`STANDARD_OPPONENTS` of ``game``'s family."""
    return next(list(names) for cls, names in STANDARD_OPPONENTS.items() if isinstance(game, cls))


def scripted_names(game: Game) -> list[str]:
    """Short names of the strategies that play ``game``."""
    return [cls.short_name for cls in REGISTRY if isinstance(game, cls.game_type)]


def make_scripted(spec: str, game: Game) -> Scripted:
    """Build the strategy named ``spec`` (``name`` or ``name:param``) for ``game``'s family."""
    short, _, param = spec.partition(":")
    for cls in REGISTRY:
        if cls.short_name == short and isinstance(game, cls.game_type):
            if not param:
                return cls()
            try:
                return cls(float(param))  # type: ignore[call-arg]
            except (TypeError, ValueError) as error:
                raise ConfigError(f"bad parameter in {spec!r}: {error}") from None
    known = ", ".join(scripted_names(game))
    raise ConfigError(f"no scripted strategy {short!r} for game {game.name!r}; known: {known}")
