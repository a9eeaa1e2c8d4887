"""A person at the terminal: shows each observation and the score, reads what the person types.

A person need not type the canonical action text: :func:`interpret` turns
what people type into it, for each kind of :data:`~detente.games.base.ActionSpec`:

=================  ==========================================================
a move             its label, any case, with or without the angle brackets:
(ChoiceSpec)       ``A``, ``b``, ``<A>``
counts             name and number pairs in any order, ``hats 3 books 0 balls
(ProposalSpec)     10``, ``balls=10, hats=3``, ``3 hats and 10 balls`` (a
                   singular name is fine: ``1 book``); an item left out counts
                   0. Or just the numbers, in the order of the fields: ``7``
                   for Trust-and-Split's coins, ``3 0 10`` for Split
a message          plain text; the delimiters are added and the game checks
(MessageSpec)      the length
=================  ==========================================================

Anything else is passed on unchanged, so the game's parser says what is wrong
and the rollout asks again (the person sees the reason). End of input or
Ctrl-C raises :class:`PlayerQuit`, which the CLI turns into a clean exit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from detente.games.base import ActionSpec, ChoiceSpec, MessageSpec, ProposalSpec, other
from detente.games.split import points_text
from detente.policies.base import Decision, Policy

_TOKEN = re.compile(r"[a-z]+|-?\d+")
_SEPARATORS = re.compile(r"[\s,;:=]+")
_FILLER = frozenset({"and"})


class PlayerQuit(Exception):
    """The person stopped playing (end of input or Ctrl-C)."""


def interpret(spec: ActionSpec, text: str) -> str:
    """The canonical action text of ``spec`` for what a person typed (see the module docstring);
    ``text`` unchanged when it is not recognised."""
    if isinstance(spec, ChoiceSpec):
        found = _choice(spec, text)
    elif isinstance(spec, ProposalSpec):
        counts = _counts(spec, text)
        found = None if counts is None else spec.render(counts)
    else:
        found = _message(spec, text)
    return text if found is None else found


def _choice(spec: ChoiceSpec, text: str) -> str | None:
    """The one option whose label (the option without angle brackets) is ``text``, ignoring case."""
    typed = text.strip().strip("<>").strip().lower()
    matches = [option for option in spec.options if option.strip("<>").lower() == typed]
    return matches[0] if len(matches) == 1 else None


def _counts(spec: ProposalSpec, text: str) -> tuple[int, ...] | None:
    """Counts in field order from name/number pairs (either way round) or from bare numbers."""
    lowered = text.lower()
    if _SEPARATORS.sub("", _TOKEN.sub("", lowered)):
        return None  # something other than names, numbers and separators
    tokens = [t for t in _TOKEN.findall(lowered) if t not in _FILLER]
    if tokens and all(not t.isalpha() for t in tokens):
        return tuple(int(t) for t in tokens) if len(tokens) == len(spec.fields) else None
    if not tokens or len(tokens) % 2:
        return None
    name_first = tokens[0].isalpha()
    counts: dict[int, int] = {}
    for a, b in zip(tokens[0::2], tokens[1::2], strict=True):
        name, number = (a, b) if name_first else (b, a)
        field = _field(spec, name)
        if field is None or number.isalpha() or field in counts:
            return None
        counts[field] = int(number)
    return tuple(counts.get(i, 0) for i in range(len(spec.fields)))


def _field(spec: ProposalSpec, name: str) -> int | None:
    """Index of the field called ``name`` (or its singular), else None."""
    for index, field in enumerate(spec.fields):
        if name in (field, field.removesuffix("s")):
            return index
    return None


def _message(spec: MessageSpec, text: str) -> str | None:
    """``text`` between the delimiters, unless it already has one of them."""
    if spec.start in text or spec.end in text:
        return None
    return spec.render(text.strip())


def hint(spec: ActionSpec) -> str:
    """What to type for ``spec``, in a few words."""
    if isinstance(spec, ChoiceSpec):
        return "type " + " or ".join(option.strip("<>") for option in spec.options)
    if isinstance(spec, ProposalSpec):
        if len(spec.fields) == 1:
            return f"type the number of {spec.fields[0]}, 0 to {spec.high}"
        example = " ".join(f"{field} {spec.high // 2}" for field in spec.fields)
        return f"type a count of each, 0 to {spec.high}, e.g. {example} (one left out counts 0)"
    if isinstance(spec, MessageSpec):
        return f"type your message, at most {spec.max_chars} characters"
    raise TypeError(f"unknown action spec {spec!r}")


class HumanPolicy(Policy):
    """Asks a person for every decision, one at a time; a rejected answer is explained and asked
    again, as often as it takes (``reask_until_valid``).

    Before each new decision the person sees a round header, what the game told their seat since
    they last acted (the rules first, then the co-player's moves and messages) and the score so
    far. ``ask(prompt)`` reads one line (default :func:`input`), ``show(text)`` writes text
    (default :func:`print`).
    """

    reask_until_valid = True

    def __init__(self, ask: Callable[[str], str] = input, show: Callable[[str], None] = print) -> None:
        self.name = "human"
        self._ask = ask
        self._show = show
        self._games = 1

    def begin(self, n_slots: int) -> None:
        self._games = n_slots

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        return [self._decide(decision) for decision in decisions]

    def _decide(self, decision: Decision) -> str:
        if decision.retry is not None:
            self._show(f"[not accepted: {decision.retry.reason}]")
        else:
            which = f" (game {decision.slot + 1} of {self._games})" if self._games > 1 else ""
            self._show(f"\n--- round {decision.game.round + 1}{which} ---\n{decision.observation}")
            self._show(_score(decision))
        try:
            typed = self._ask(f"({hint(decision.spec)}) > ")
        except (EOFError, KeyboardInterrupt):
            raise PlayerQuit("the player left the game") from None
        return interpret(decision.spec, typed)


def _score(decision: Decision) -> str:
    returns = decision.game.returns()
    mine, theirs = returns[decision.seat], returns[other(decision.seat)]
    return f"Score so far: you {points_text(mine)}, the other agent {points_text(theirs)}."
