"""Iterated 2x2 matrix games: the Iterated Prisoner's Dilemma and its kin.

Version 1. Source: Piche et al., "Learning Robust Social Strategies with Large
Language Models", arXiv 2511.19405 (2025), section on the IPD.

=================  ==========================================================
Players            2, simultaneous moves, ``n_rounds`` rounds (default 10), or
                   a random length when ``continuation_prob`` is set
Actions            ``<A>`` (index 0) or ``<B>`` (index 1). In the IPD ``A`` is
                   cooperate and ``B`` defect; the prompt never names the game
Observation        the rules and payoff table once, then each round what the
                   other agent played last round (with ``recap``, both moves);
                   no round counter, no score
Rewards            from the payoff table, per round
Reward scale c     5 (paper code, IPD)
=================  ==========================================================

Payoff presets, rows = own action, ``(own, other)``::

    prisoners_dilemma   A/A 3,3   A/B 0,5   B/A 5,0   B/B 1,1   (R=3 S=0 T=5 P=1)
    stag_hunt           A/A 4,4   A/B 0,3   B/A 3,0   B/B 2,2   (A = stag)
    chicken             A/A 3,3   A/B 1,4   B/A 4,1   B/B 0,0   (A = swerve)

SPEC 2.1 reference values over 10 rounds of the IPD: mutual cooperation
30/30, mutual defection 10/10, always-defect vs tit-for-tat 14/9,
always-defect vs always-cooperate 50/0.
"""

from __future__ import annotations

from dataclasses import dataclass

from detente.games.base import Choice, ChoiceSpec, Game, Seat, check_rounds, other

COOPERATE, DEFECT = 0, 1
LABELS = ("A", "B")
MOVES = ChoiceSpec(options=tuple(f"<{label}>" for label in LABELS), fallback=COOPERATE)

PayoffTable = tuple[tuple[tuple[float, float], tuple[float, float]],
                    tuple[tuple[float, float], tuple[float, float]]]
"""``table[a0][a1] = (reward of seat 0, reward of seat 1)``."""

PRESETS: dict[str, PayoffTable] = {
    "prisoners_dilemma": (((3, 3), (0, 5)), ((5, 0), (1, 1))),
    "stag_hunt": (((4, 4), (0, 3)), ((3, 0), (2, 2))),
    "chicken": (((3, 3), (1, 4)), ((4, 1), (0, 0))),
}
PRESET_NAMES = {"prisoners_dilemma": "ipd", "stag_hunt": "stag_hunt", "chicken": "chicken"}
"""The registry name of the game each preset table plays."""


@dataclass(frozen=True)
class MatrixView:
    """What a seat knows: both action histories, oldest first (0 = A, 1 = B)."""

    own: tuple[int, ...]
    other: tuple[int, ...]


class MatrixGame(Game[Choice, MatrixView]):
    """An iterated two-action matrix game given by its payoff table.

    ``name`` is the registry name it was built under (``ipd``, ``stag_hunt``, ``chicken``,
    ``matrix``): a preset table is named after its game, any other table ``matrix``.
    """

    version = 1
    reward_scale = 5.0

    def __init__(
        self,
        payoffs: PayoffTable | str = "prisoners_dilemma",
        n_rounds: int = 10,
        continuation_prob: float | None = None,
        name: str | None = None,
        recap: bool = False,
    ) -> None:
        """``recap``: each round's message names the seat's own last move beside the other's
        ("Last round you played <A> and the other agent played <B>."), which a chat otherwise holds
        only in its previous answer. Off by default: the paper's text."""
        if isinstance(payoffs, str):
            if payoffs not in PRESETS:
                raise ValueError(f"unknown payoff preset {payoffs!r}; known: {', '.join(PRESETS)}")
            name = name or PRESET_NAMES[payoffs]
            payoffs = PRESETS[payoffs]
        self.name = name or "matrix"
        check_rounds(n_rounds)
        if continuation_prob is not None and not 0.0 <= continuation_prob < 1.0:
            raise ValueError(f"continuation_prob must be in [0, 1), got {continuation_prob}")
        self.payoffs = payoffs
        self.max_rounds = n_rounds
        self.continuation_prob = continuation_prob
        self.recap = recap

    def _start(self) -> None:
        self.n_rounds = self._draw_length()
        self.moves: list[tuple[int, int]] = []
        for seat in (0, 1):
            self._tell(seat, self._rules(seat) + "\n\n" + _ASK)

    def _draw_length(self) -> int:
        """Fixed length, or 1 + Geometric rounds (continue with prob p), capped at ``max_rounds``."""
        if self.continuation_prob is None:
            return self.max_rounds
        length = 1
        while length < self.max_rounds and self.rng.random() < self.continuation_prob:
            length += 1
        return length

    def _rules(self, seat: Seat) -> str:
        lines = [
            "You are playing a game with another agent, for several rounds.",
            "In each round you both choose an action at the same time, A or B.",
            "Your points in a round depend on both choices:",
        ]
        for mine in (0, 1):
            for theirs in (0, 1):
                rewards = self.payoffs[mine][theirs] if seat == 0 else self.payoffs[theirs][mine]
                lines.append(
                    f"- you play {LABELS[mine]}, the other plays {LABELS[theirs]}: "
                    f"you get {_num(rewards[seat])}, the other gets {_num(rewards[other(seat)])}"
                )
        lines.append("Your goal is to get as many points as you can over all rounds.")
        return "\n".join(lines)

    def pending(self) -> dict[Seat, ChoiceSpec]:
        return {} if self.done else {0: MOVES, 1: MOVES}

    def _apply(self, actions: dict[Seat, Choice]) -> tuple[float, float]:
        a0, a1 = actions[0].index, actions[1].index
        self.moves.append((a0, a1))
        rewards = self.payoffs[a0][a1]
        if len(self.moves) < self.n_rounds:
            for seat, mine, theirs in ((0, a0, a1), (1, a1, a0)):
                self._tell(seat, self._last_round(mine, theirs) + "\n" + _ASK)
        return (float(rewards[0]), float(rewards[1]))

    def _last_round(self, mine: int, theirs: int) -> str:
        own, other_move = MOVES.options[mine], MOVES.options[theirs]
        if self.recap:
            return f"Last round you played {own} and the other agent played {other_move}."
        return f"The other agent played {other_move} last round."

    def view(self, seat: Seat) -> MatrixView:
        own = tuple(m[seat] for m in self.moves)
        theirs = tuple(m[other(seat)] for m in self.moves)
        return MatrixView(own=own, other=theirs)

    def max_welfare(self) -> float:
        best = max(sum(self.payoffs[a][b]) for a in (0, 1) for b in (0, 1))
        return best * len(self.moves)


_ASK = "Choose your action for this round: answer with <A> or <B>."


def _num(x: float) -> str:
    return f"{x:g}"
