"""The progress callback library code reports through (the command line draws it as a bar).

``on_progress(done, total, status)``: ``done`` units of ``total`` (None while unknown) are
finished; ``status`` is a short text for the user. Library functions that take long accept one
and call it after each unit (a training iteration, a tournament pairing, an evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

OnProgress: TypeAlias = Callable[[int, "int | None", str], None]


def silent(done: int, total: int | None, status: str) -> None:
    """The callback that reports nothing."""
