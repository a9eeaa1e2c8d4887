"""The game protocol every detente game follows.

A detente game is a two-player, multi-round text game. In each round the
players make one or more *decisions*; some are taken in turn (a message), some
simultaneously (a move, a proposal). At any moment :meth:`Game.pending` says
which seats must act and what a valid action looks like (an
:data:`ActionSpec`). Raw text from any player — a language model, a script, a
human — goes through :func:`parse_action`, which returns a typed
:data:`Action` or a :class:`ParseError`; it never raises.

Games know nothing of torch or of language models. They are deterministic
given the seed passed to :meth:`Game.reset`.

Observations are text. Each seat has an inbox: the game appends what the
seat learns (the rules once, then per-round news) and :meth:`Game.observation`
returns everything added since that seat last acted. A language-model player
sends this text as its next user turn; a scripted player ignores it and reads
the structured :meth:`Game.view` instead.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeAlias, TypeVar

Seat: TypeAlias = int
"""A player's position in the game: 0 or 1."""

SEATS: tuple[Seat, Seat] = (0, 1)


# --------------------------------------------------------------------------
# What a valid action looks like
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class ChoiceSpec:
    """Pick exactly one of a finite list of canonical texts, e.g. ``("<A>", "<B>")``."""

    options: tuple[str, ...]
    fallback: int = 0
    """Index of the option taken when a player gives no valid answer."""

    def render(self, index: int) -> str:
        return self.options[index]


@dataclass(frozen=True)
class ProposalSpec:
    """One integer count per field, each in ``0..high``.

    The canonical text interleaves fixed pieces and the counts:
    ``pieces[0] + str(c0) + pieces[1] + str(c1) + ... + pieces[n]``, so a
    language model can be asked for each field in turn with the text before it
    fixed. Parsing is lenient: a field is found by its name followed by ``=``
    or ``:`` and a number anywhere in the text; a missing field counts 0 (SPEC
    2.2: "an item left out means 0"), but at least one field must be present.
    """

    fields: tuple[str, ...]
    high: int
    pieces: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.pieces) != len(self.fields) + 1:
            raise ValueError(
                f"ProposalSpec needs len(fields)+1 = {len(self.fields) + 1} pieces, "
                f"got {len(self.pieces)}"
            )

    def render(self, counts: tuple[int, ...]) -> str:
        text = self.pieces[0]
        for count, piece in zip(counts, self.pieces[1:], strict=True):
            text += f"{count}{piece}"
        return text


@dataclass(frozen=True)
class MessageSpec:
    """Free text of at most ``max_chars`` characters between two delimiters."""

    max_chars: int
    start: str = "<<message_start>>"
    end: str = "<<message_end>>"

    def render(self, text: str) -> str:
        return f"{self.start}{text}{self.end}"


ActionSpec: TypeAlias = ChoiceSpec | ProposalSpec | MessageSpec


# --------------------------------------------------------------------------
# Typed actions and parse errors
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    index: int


@dataclass(frozen=True)
class Proposal:
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Message:
    text: str


Action: TypeAlias = Choice | Proposal | Message

A = TypeVar("A", bound=Action)
"""The actions a game takes, e.g. ``Choice``, or ``Message | Proposal`` for a game with two phases."""
V = TypeVar("V")
"""What a game's :meth:`Game.view` returns, e.g. :class:`~detente.games.ipd.MatrixView`."""
_Kind = TypeVar("_Kind", Choice, Proposal, Message)


@dataclass(frozen=True)
class ParseError:
    """Why a raw text is not a valid action; returned, never raised."""

    reason: str
    raw: str


def parse_action(spec: ActionSpec, raw: str) -> Action | ParseError:
    """Turn a player's raw text into a typed action for ``spec``; never raises."""
    if not isinstance(raw, str):
        return ParseError(f"expected text, got {type(raw).__name__}", repr(raw))
    if isinstance(spec, ChoiceSpec):
        return _parse_choice(spec, raw)
    if isinstance(spec, ProposalSpec):
        return _parse_proposal(spec, raw)
    return _parse_message(spec, raw)


def _parse_choice(spec: ChoiceSpec, raw: str) -> Choice | ParseError:
    found = {i for i, option in enumerate(spec.options) if option in raw}
    if len(found) == 1:
        return Choice(found.pop())
    options = ", ".join(spec.options)
    if not found:
        return ParseError(f"no option found; write exactly one of {options}", raw)
    return ParseError(f"several options found; write exactly one of {options}", raw)


def _parse_proposal(spec: ProposalSpec, raw: str) -> Proposal | ParseError:
    counts = []
    seen_any = False
    for name in spec.fields:
        matches = re.findall(rf"\b{re.escape(name)}\s*[=:]\s*(-?\d+)", raw, re.IGNORECASE)
        if len(set(matches)) > 1:
            return ParseError(f"{name} is given more than once with different values", raw)
        if not matches:
            counts.append(0)
            continue
        seen_any = True
        value = int(matches[0])
        if not 0 <= value <= spec.high:
            return ParseError(f"{name}={value} is outside 0..{spec.high}", raw)
        counts.append(value)
    if not seen_any:
        return ParseError(f"no count found; write it as {spec.render((0,) * len(spec.fields))}", raw)
    return Proposal(tuple(counts))


def _parse_message(spec: MessageSpec, raw: str) -> Message | ParseError:
    text = raw
    if spec.start in text:
        text = text.split(spec.start, 1)[1]
    if spec.end in text:
        text = text.split(spec.end, 1)[0]
    text = text.strip()
    if len(text) > spec.max_chars:
        return ParseError(f"message has {len(text)} characters, the limit is {spec.max_chars}", raw)
    return Message(text)


def expect(kind: type[_Kind], action: Action) -> _Kind:
    """``action`` as the ``kind`` it is known to be; ``TypeError`` if it is not (a game's bug).

    For :meth:`Game._apply` of a game with phases (``Game[Message | Proposal, ...]``):
    :meth:`Game.step` has checked every action against its pending spec, so a phase knows which
    kind it gets; ``expect(Message, actions[seat]).text`` says so to the type checker.
    """
    if not isinstance(action, kind):
        raise TypeError(f"expected a {kind.__name__}, got {action!r}")
    return action


def fallback_action(spec: ActionSpec) -> Action:
    """The action taken for a player that gave no valid answer (counted as invalid)."""
    if isinstance(spec, ChoiceSpec):
        return Choice(spec.fallback)
    if isinstance(spec, ProposalSpec):
        return Proposal((0,) * len(spec.fields))
    return Message("")


def check_action(spec: ActionSpec, action: Action) -> None:
    """Raise ``ValueError`` if ``action`` does not fit ``spec`` (a caller's bug, not a player's)."""
    ok = (
        (isinstance(spec, ChoiceSpec) and isinstance(action, Choice)
         and 0 <= action.index < len(spec.options))
        or (isinstance(spec, ProposalSpec) and isinstance(action, Proposal)
            and len(action.counts) == len(spec.fields)
            and all(0 <= c <= spec.high for c in action.counts))
        or (isinstance(spec, MessageSpec) and isinstance(action, Message)
            and len(action.text) <= spec.max_chars)
    )
    if not ok:
        raise ValueError(f"action {action!r} does not fit {spec!r}")


# --------------------------------------------------------------------------
# The game
# --------------------------------------------------------------------------
@dataclass
class _Inbox:
    texts: list[str] = field(default_factory=list)
    read: int = 0


class Game(ABC, Generic[A, V]):
    """Base class of all games: round bookkeeping, inboxes, step contract.

    ``Game[A, V]`` takes actions of type ``A`` and shows scripted players views of type ``V``,
    e.g. ``MatrixGame(Game[Choice, MatrixView])``. Subclasses implement :meth:`_start` (deal the
    first round after reset), :meth:`pending`, :meth:`_apply` (take one set of actions),
    :meth:`view` and :meth:`max_welfare`. :func:`detente.games.testing.check_game` checks the
    whole contract in one call.
    """

    name: str
    """Registry name, e.g. ``"ipd"``: a class attribute, or set in ``__init__`` by a class that
    plays under several names (:class:`~detente.games.ipd.MatrixGame`)."""
    version: ClassVar[int]
    """Bumped whenever rules or rendered text change."""
    reward_scale: ClassVar[float]
    """Per-game constant c that rewards are divided by for learning (SPEC 3)."""

    n_rounds: int
    """Number of rounds of this episode (fixed at reset)."""

    def reset(self, seed: int) -> None:
        """Start a new episode; everything random in it follows from ``seed``."""
        self.seed = seed
        self.rng = random.Random(seed)
        self.round = 0
        self.round_rewards: list[tuple[float, float]] = []
        self._inboxes = (_Inbox(), _Inbox())
        self._start()

    @property
    def done(self) -> bool:
        return self.round >= self.n_rounds

    @abstractmethod
    def _start(self) -> None:
        """Set up the first round and tell both seats the rules."""

    @abstractmethod
    def pending(self) -> Mapping[Seat, ActionSpec]:
        """Seats that must act now, with what they may do; empty when done.

        A subclass may return a narrower mapping, e.g. ``dict[Seat, ChoiceSpec]``.
        """

    @abstractmethod
    def _apply(self, actions: dict[Seat, A]) -> tuple[float, float] | None:
        """Take checked actions; return the round's rewards if it ended, else None."""

    @abstractmethod
    def view(self, seat: Seat) -> V:
        """Structured information available to ``seat`` (for scripted players)."""

    @abstractmethod
    def max_welfare(self) -> float:
        """Best possible total reward of both seats over the episode so far (for efficiency)."""

    def parse(self, seat: Seat, raw: str) -> Action | ParseError:
        """Parse ``raw`` as ``seat``'s pending action; never raises."""
        spec = self.pending().get(seat)
        if spec is None:
            return ParseError(f"seat {seat} has nothing to do now", raw)
        return parse_action(spec, raw)

    def observation(self, seat: Seat) -> str:
        """Text ``seat`` has been told since it last acted."""
        inbox = self._inboxes[seat]
        return "\n\n".join(inbox.texts[inbox.read:])

    def step(self, actions: dict[Seat, A]) -> tuple[float, float] | None:
        """Apply one action per pending seat; return the round's rewards if the round ended.

        ``ValueError`` if the seats are not exactly the pending ones or an action does not fit
        its seat's spec (checked at run time too: a caller's bug, never a player's).
        """
        pending = self.pending()
        if set(actions) != set(pending):
            raise ValueError(f"expected actions for seats {sorted(pending)}, got {sorted(actions)}")
        for seat, action in actions.items():
            check_action(pending[seat], action)
            inbox = self._inboxes[seat]
            inbox.read = len(inbox.texts)
        rewards = self._apply(actions)
        if rewards is not None:
            self.round_rewards.append(rewards)
            self.round += 1
        return rewards

    def returns(self) -> tuple[float, float]:
        """Undiscounted total reward of each seat so far."""
        return (sum(r[0] for r in self.round_rewards), sum(r[1] for r in self.round_rewards))

    def _tell(self, seat: Seat, text: str) -> None:
        self._inboxes[seat].texts.append(text)

    def _tell_both(self, text: str) -> None:
        for seat in SEATS:
            self._tell(seat, text)


def check_rounds(n_rounds: int) -> int:
    """``n_rounds`` if it is a valid episode length (>= 1), else ``ValueError``."""
    if n_rounds < 1:
        raise ValueError(f"n_rounds must be >= 1, got {n_rounds}")
    return n_rounds


def other(seat: Seat) -> Seat:
    return 1 - seat
