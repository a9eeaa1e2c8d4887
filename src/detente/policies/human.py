"""A person at the terminal: shows each observation and reads the reply from standard input."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from detente.games.base import ChoiceSpec, MessageSpec, ProposalSpec
from detente.policies.base import Decision, Policy


class HumanPolicy(Policy):
    """Asks a person for every decision, one at a time; a rejected answer is asked again."""

    def __init__(self, ask: Callable[[str], str] = input, show: Callable[[str], None] = print) -> None:
        self.name = "human"
        self._ask = ask
        self._show = show

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        replies = []
        for decision in decisions:
            if decision.retry is not None:
                self._show(f"[not accepted: {decision.retry.reason}]")
            else:
                self._show(f"\n--- game {decision.slot}, seat {decision.seat} ---\n{decision.observation}")
            replies.append(self._ask(f"{_hint(decision)}> "))
        return replies


def _hint(decision: Decision) -> str:
    spec = decision.spec
    if isinstance(spec, ChoiceSpec):
        return " or ".join(spec.options)
    if isinstance(spec, ProposalSpec):
        return f"e.g. {spec.render(tuple(spec.high // 2 for _ in spec.fields))}"
    if isinstance(spec, MessageSpec):
        return f"message (at most {spec.max_chars} characters)"
    raise TypeError(f"unknown action spec {spec!r}")
