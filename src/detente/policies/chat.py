"""What a chat-based agent (a local language model, an API model) says to its model each turn.

A chat-based agent keeps one chat per (game slot, seat): the game's text for
the seat as user turns, its own answers as assistant turns. The user turn for
a decision is :func:`user_turn`: the game's new observation, or, after an
answer the game rejected, :data:`RETRY_TEXT` with the parser's reason. Every
chat-based policy uses these texts, so the same game reads the same to every
model.
"""

from __future__ import annotations

from detente.policies.base import Decision

RETRY_TEXT = "Your previous answer was not accepted: {reason}. Answer again."
"""User turn added after an answer the game rejected (``reason`` is the parser's)."""
EMPTY_TEXT = "(No new information.)"
"""User turn used when the game has nothing new to tell the seat."""


def user_turn(decision: Decision) -> str:
    """The next user turn for ``decision``: the retry text if its last answer was rejected,
    else the game's new text for the seat, else :data:`EMPTY_TEXT`."""
    if decision.retry is not None:
        return RETRY_TEXT.format(reason=decision.retry.reason)
    return decision.observation or EMPTY_TEXT
