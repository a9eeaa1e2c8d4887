"""Accumulators of behaviour figures: a rate (hits / trials) and a mean (total / count)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TypeAlias

from detente.games.base import Game, Seat

SeatGames: TypeAlias = Iterable[tuple[Game, Seat]]
"""Finished games of one agent, each with the seat it held."""
Figures: TypeAlias = dict[str, float | None]
"""Figure name -> value; None when there was nothing to measure."""


@dataclass
class Rate:
    """A rate accumulated as hits / trials."""

    hits: int = 0
    trials: int = 0

    def add(self, hit: bool) -> None:
        self.hits += int(hit)
        self.trials += 1

    @property
    def value(self) -> float | None:
        return self.hits / self.trials if self.trials else None


@dataclass
class Mean:
    """A mean accumulated as total / count."""

    total: float = 0.0
    count: int = 0

    def add(self, x: float) -> None:
        self.total += x
        self.count += 1

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class Accumulated:
    """Base of a dataclass whose fields are :class:`Rate` / :class:`Mean`: :meth:`figures` maps each field
    name to its value."""

    def figures(self) -> Figures:
        return {f.name: getattr(self, f.name).value for f in fields(self)}
