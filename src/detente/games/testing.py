"""The conformance check for detente games: ``check_game(game)`` in one call.

PettingZoo ships ``parallel_api_test`` so that whoever writes an environment
can check it against the API; :func:`check_game` does the same for the
contract of :mod:`detente.games.base`. It plays the game once per seed with
random legal actions (20% of them the spec's fallback action), drawn from a
stream seeded by the seed, then replays every seed on the same object, and
checks:

=======================  ======================================================
check                    what must hold
=======================  ======================================================
metadata                 ``name`` a non-empty str, ``version`` an int,
                         ``reward_scale`` a number > 0
reset                    after ``reset(seed)``: round 0, not done, no rewards,
                         ``n_rounds`` an int >= 1 that stays fixed
pending                  not empty until done, the same on a second call, keyed
                         by seats 0/1, values ChoiceSpec (with options),
                         ProposalSpec or MessageSpec
observation              a non-empty str for every seat that must act, the same
                         on a second call
view                     ``view(seat)`` works for both seats, also once done;
                         views, observations and parsing change nothing
parse-never-raises       ``parse`` returns, never raises, on garbage (empty,
                         huge, out-of-range numbers, ``None``, bytes)
parse-fits               an action ``parse`` returns fits its seat's spec
parse-waiting-seat       a seat that must not act gets a ``ParseError``
fallback-legal           ``fallback_action(spec)`` fits ``spec``
render-parses-back       ``spec.render(...)``, the canonical text of an action,
                         parses back to that action
step-rejects-*           ``step`` raises ``ValueError`` for a missing seat
                         (``missing-seat``), an action for a seat that must not
                         act (``extra-seat``), an action of the wrong kind
                         (``wrong-kind``) or outside the spec
                         (``out-of-range``), and changes nothing
step                     a legal step returns ``None`` (same round) or a pair of
                         floats (next round, appended to ``round_rewards``)
max-welfare              welfare so far <= ``max_welfare()`` after every round
done                     done after ``n_rounds`` rounds: nothing pending, one
                         reward pair per round, ``returns()`` their sums,
                         ``step`` and ``parse`` refuse
terminates               the episode ends within ``max_steps`` steps
reset-deterministic      replaying a seed on the same object repeats every
                         seat, spec, observation and reward (``reset`` starts
                         afresh and draws only from ``self.rng``)
=======================  ======================================================

A failure raises ``AssertionError("check_game(<name>) seed <s>, round <r>:
<check>: <what happened>")``; a game method that raises inside a check is
reported the same way, with the game's exception chained. The game is left
after its last replayed episode.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from detente.games.base import (
    SEATS,
    Action,
    ActionSpec,
    Choice,
    ChoiceSpec,
    Game,
    Message,
    MessageSpec,
    ParseError,
    Proposal,
    ProposalSpec,
    Seat,
    check_action,
    fallback_action,
)

GARBAGE: tuple[object, ...] = (
    "", " ", "\n\n", "\x00", "\U0001f642" * 3, "x" * 5000, "None", "-1", "=-1", "<>", "<A><B>",
    "hats=99999999999999999999 coins=-3 books=1 books=2", "<<message_start>>",
    "<<message_end>>text<<message_start>>", None, 7, b"<A>",
)
"""Replies (some not even text) that ``parse`` must survive without raising."""

MESSAGES = ("", "ok", "Let us split evenly.", "My hand is rock.", "I take books=1 hats=0 balls=2.")
"""The messages the random player sends (cut to the spec's ``max_chars``)."""

FALLBACK_SHARE = 0.2
"""Share of decisions where the random player takes the spec's fallback action, as ``play`` does
for a reply that never parses."""

T = TypeVar("T")


@dataclass(frozen=True)
class _Step:
    """One decision as played: what a replay of the same seed must repeat."""

    round: int
    seat: Seat
    spec: ActionSpec
    observation: str
    raw: str


@dataclass(frozen=True)
class _Trace:
    """One episode: every decision, then the rewards of every round."""

    steps: tuple[_Step, ...]
    rewards: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class _Where:
    """The game and seed being checked; builds the failure naming them, the round and the check."""

    name: str
    seed: int

    def error(self, round_index: int, check: str, detail: str) -> AssertionError:
        where = f"check_game({self.name}) seed {self.seed}, round {round_index}"
        return AssertionError(f"{where}: {check}: {detail}")


def check_game(game: Game[Any, Any], seeds: Sequence[int] = (0, 1, 2), *, max_steps: int = 10_000) -> None:
    """Check ``game`` against the contract of :mod:`detente.games.base`; ``AssertionError`` if it breaks it.

    Plays one episode per seed in ``seeds`` with random legal actions, checking every decision, then
    replays each seed and compares (the checks are listed in this module's docstring). An episode
    longer than ``max_steps`` steps fails the ``terminates`` check. ``ValueError`` for no seeds or
    ``max_steps`` < 1.
    """
    if not seeds:
        raise ValueError("check_game needs at least one seed")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    _check_metadata(game)
    first = [_play(game, seed, max_steps) for seed in seeds]
    for seed, trace in zip(seeds, first, strict=True):
        _check_replay(trace, _play(game, seed, max_steps), _Where(game.name, seed))


def _play(game: Game[Any, Any], seed: int, max_steps: int) -> _Trace:
    """Reset ``game`` with ``seed`` and play it to the end with random legal actions, checking every step."""
    where = _Where(game.name, seed)
    rng = random.Random(f"check_game:{seed}")
    _call(where, 0, "reset", game.reset, seed)
    _check_reset(game, where)
    n_rounds = game.n_rounds
    steps: list[_Step] = []
    for _ in range(max_steps):
        if game.done:
            break
        steps += _check_decision(game, where, rng)
        if game.n_rounds != n_rounds:
            raise where.error(game.round, "reset", f"n_rounds changed from {n_rounds} to {game.n_rounds}")
    if not game.done:
        raise where.error(game.round, "terminates", f"not done after {max_steps} steps")
    _check_done(game, where, steps[-1].spec)
    return _Trace(tuple(steps), tuple(game.round_rewards))


# --------------------------------------------------------------------------
# Before and after an episode
# --------------------------------------------------------------------------
def _check_metadata(game: Game[Any, Any]) -> None:
    """``name``, ``version`` and ``reward_scale`` are declared with the right types."""
    label = f"check_game({type(game).__name__}): metadata"
    name = getattr(game, "name", None)
    if not isinstance(name, str) or not name:
        raise AssertionError(f"{label}: name must be a non-empty str, got {name!r}")
    version = getattr(game, "version", None)
    if not isinstance(version, int) or isinstance(version, bool):
        raise AssertionError(f"{label}: version must be an int, got {version!r}")
    scale = getattr(game, "reward_scale", None)
    if not isinstance(scale, int | float) or not scale > 0:
        raise AssertionError(f"{label}: reward_scale must be a number > 0, got {scale!r}")


def _check_reset(game: Game[Any, Any], where: _Where) -> None:
    """A fresh episode: ``n_rounds`` >= 1, round 0, not done, no rewards yet."""
    if not isinstance(game.n_rounds, int) or game.n_rounds < 1:
        raise where.error(0, "reset", f"n_rounds must be an int >= 1, got {game.n_rounds!r}")
    if game.round != 0 or game.done or game.round_rewards or tuple(game.returns()) != (0.0, 0.0):
        raise where.error(0, "reset", (
            f"a fresh episode must be at round 0, not done, with no rewards; got round {game.round}, "
            f"done {game.done}, round_rewards {_short(game.round_rewards)}, returns {game.returns()}"
        ))


def _check_done(game: Game[Any, Any], where: _Where, last_spec: ActionSpec) -> None:
    """After the last round: nothing pending, one reward pair per round, returns their sums, no more play."""
    r = game.round
    if dict(game.pending()):
        raise where.error(r, "done", f"the game is done but pending() is {_short(dict(game.pending()))}")
    if game.round != game.n_rounds or len(game.round_rewards) != game.n_rounds:
        raise where.error(r, "done", (
            f"done at round {game.round} with {len(game.round_rewards)} reward pairs; "
            f"n_rounds is {game.n_rounds}"
        ))
    sums = [sum(rewards[seat] for rewards in game.round_rewards) for seat in SEATS]
    returns = _call(where, r, "done", game.returns)
    if not all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(returns, sums, strict=True)):
        raise where.error(r, "done", f"returns() is {returns}, the round rewards sum to {tuple(sums)}")
    try:
        game.step({0: fallback_action(last_spec)})
    except ValueError:
        pass
    else:
        raise where.error(r, "done", "step accepted an action after the game ended")
    for seat in SEATS:
        _call(where, r, "view", game.view, seat)
        parsed = _call(where, r, "parse-never-raises", game.parse, seat, "<A>")
        if not isinstance(parsed, ParseError):
            raise where.error(r, "done", f"the game is done but parse gave seat {seat} {parsed!r}")


def _check_replay(first: _Trace, again: _Trace, where: _Where) -> None:
    """The replay of a seed repeats the first play decision by decision, then reward by reward."""
    for i, (a, b) in enumerate(zip(first.steps, again.steps, strict=False)):
        if a != b:
            name = next(f.name for f in fields(_Step) if getattr(a, f.name) != getattr(b, f.name))
            raise where.error(a.round, "reset-deterministic", (
                f"replaying the seed changed decision {i}'s {name}: "
                f"{_short(getattr(a, name))} the first time, {_short(getattr(b, name))} the second"
            ))
    if len(first.steps) != len(again.steps):
        shorter = min(first.steps, again.steps, key=len)
        raise where.error(shorter[-1].round if shorter else 0, "reset-deterministic", (
            f"replaying the seed gave {len(again.steps)} decisions, the first play {len(first.steps)}"
        ))
    for r, (was, now) in enumerate(zip(first.rewards, again.rewards, strict=False)):
        if was != now:
            raise where.error(r, "reset-deterministic", f"replaying the seed gave rewards {now}, first {was}")


# --------------------------------------------------------------------------
# One decision
# --------------------------------------------------------------------------
def _check_decision(game: Game[Any, Any], where: _Where, rng: random.Random) -> list[_Step]:
    """Check everything about the pending decision, then take it with random legal actions."""
    r = game.round
    pending = _check_pending(game, where)
    observations = {seat: _check_observation(game, where, seat) for seat in pending}
    before = _snapshot(game, observations)
    for seat in SEATS:
        _call(where, r, "view", game.view, seat)
    _check_unchanged(game, where, before, "view", "reading the views")
    actions = {seat: _choose(game, where, seat, spec, rng) for seat, spec in pending.items()}
    raws = {seat: _canonical(pending[seat], action) for seat, action in actions.items()}
    _check_parse(game, where, pending, (*GARBAGE, *raws.values()))
    _check_unchanged(game, where, before, "parse-never-raises", "parsing")
    _check_refusals(game, where, pending, actions, before)
    _check_step(game, where, actions)
    return [_Step(r, seat, pending[seat], observations[seat], raws[seat]) for seat in pending]


def _check_pending(game: Game[Any, Any], where: _Where) -> dict[Seat, ActionSpec]:
    """``pending()`` is not empty, stable between calls, keyed by seats, valued by action specs."""
    r = game.round
    pending = dict(_call(where, r, "pending", game.pending))
    if not pending:
        raise where.error(r, "pending", "the game is not done but no seat must act")
    again = dict(game.pending())
    if again != pending:
        raise where.error(r, "pending", (
            f"pending() changed without a step: {_short(pending)}, then {_short(again)}"
        ))
    for seat, spec in pending.items():
        if seat not in SEATS:
            raise where.error(r, "pending", f"{seat!r} is not a seat (seats are {SEATS})")
        if not isinstance(spec, ChoiceSpec | ProposalSpec | MessageSpec):
            raise where.error(r, "pending", f"seat {seat}'s spec {spec!r} is not an ActionSpec")
        if isinstance(spec, ChoiceSpec) and not spec.options:
            raise where.error(r, "pending", f"seat {seat}'s ChoiceSpec has no options")
    return pending


def _check_observation(game: Game[Any, Any], where: _Where, seat: Seat) -> str:
    """A seat that must act has been told something (non-empty text), the same on every call."""
    r = game.round
    text = _call(where, r, "observation", game.observation, seat)
    if not isinstance(text, str) or not text.strip():
        raise where.error(r, "observation", f"seat {seat} must act but its observation is {_short(text)}")
    again = game.observation(seat)
    if again != text:
        raise where.error(r, "observation", (
            f"seat {seat}'s observation changed between two calls: {_short(text)}, then {_short(again)}"
        ))
    return text


def _check_parse(
    game: Game[Any, Any], where: _Where, pending: Mapping[Seat, ActionSpec], raws: Sequence[object]
) -> None:
    """No ``raws`` make ``parse`` raise; what it accepts fits the spec; a waiting seat gets errors."""
    r = game.round
    for seat in SEATS:
        spec = pending.get(seat)
        for raw in raws:
            parsed = _call(where, r, "parse-never-raises", game.parse, seat, raw)
            if spec is None and not isinstance(parsed, ParseError):
                raise where.error(r, "parse-waiting-seat", (
                    f"seat {seat} must not act, but parse({_short(raw)}) gave {_short(parsed)}"
                ))
            if spec is not None and not isinstance(parsed, ParseError) and not _fits(spec, parsed):
                raise where.error(r, "parse-fits", (
                    f"parse({_short(raw)}) for seat {seat} gave {_short(parsed)}, which does not fit {spec!r}"
                ))


def _choose(game: Game[Any, Any], where: _Where, seat: Seat, spec: ActionSpec, rng: random.Random) -> Action:
    """A random legal action for ``seat`` (sometimes the fallback); checks that the fallback fits and
    that the action's canonical text parses back to it."""
    r = game.round
    fallback = fallback_action(spec)
    if not _fits(spec, fallback):
        raise where.error(r, "fallback-legal", f"the fallback {fallback!r} does not fit {spec!r}")
    action = fallback if rng.random() < FALLBACK_SHARE else _random_action(spec, rng)
    raw = _canonical(spec, action)
    parsed = _call(where, r, "parse-never-raises", game.parse, seat, raw)
    if parsed != action:
        raise where.error(r, "render-parses-back", (
            f"seat {seat}: {_short(raw)}, the canonical text of {action!r}, parsed as {_short(parsed)}"
        ))
    return action


def _check_refusals(
    game: Game[Any, Any],
    where: _Where,
    pending: Mapping[Seat, ActionSpec],
    actions: dict[Seat, Action],
    before: _Snapshot,
) -> None:
    """``step`` raises ``ValueError`` for wrong seats and misfit actions; a refused step changes nothing."""
    r = game.round
    for check, what, bad in _bad_steps(pending, actions):
        try:
            game.step(bad)
        except ValueError:
            pass
        except Exception as error:
            raise where.error(r, check, (
                f"step {what} raised {type(error).__name__}: {error}; it must raise ValueError"
            )) from error
        else:
            raise where.error(r, check, f"step accepted actions {what}")
        _check_unchanged(game, where, before, check, f"a refused step {what}")


def _bad_steps(
    pending: Mapping[Seat, ActionSpec], actions: dict[Seat, Action]
) -> list[tuple[str, str, dict[Seat, Action]]]:
    """(check, what is wrong, actions) for every step that must be refused at this decision.

    A misfit action goes to the first pending seat, so that ``step`` meets it before any other.
    """
    bad: list[tuple[str, str, dict[Seat, Action]]] = [
        ("step-rejects-missing-seat", f"without seat {seat}",
         {s: a for s, a in actions.items() if s != seat})
        for seat in pending
    ]
    seat, spec = next(iter(pending.items()))
    bad += [
        ("step-rejects-extra-seat", f"with an action for seat {extra}, which must not act",
         {**actions, extra: fallback_action(spec)})
        for extra in SEATS if extra not in pending
    ]
    wrong = Proposal((1,)) if isinstance(spec, MessageSpec) else Message("x")
    bad.append(("step-rejects-wrong-kind", f"with {wrong!r} for seat {seat}, whose spec is {spec!r}",
                {**actions, seat: wrong}))
    outside: Action
    if isinstance(spec, ChoiceSpec):
        outside = Choice(len(spec.options))
    elif isinstance(spec, ProposalSpec):
        outside = Proposal((spec.high + 1,) * len(spec.fields))
    else:
        outside = Message("x" * (spec.max_chars + 1))
    bad.append(("step-rejects-out-of-range",
                f"with {_short(outside)} for seat {seat}, whose spec is {spec!r}",
                {**actions, seat: outside}))
    return bad


def _check_step(game: Game[Any, Any], where: _Where, actions: dict[Seat, Action]) -> None:
    """A legal step either keeps the round (``None``) or ends it with one float pair, within max welfare."""
    r, ended = game.round, len(game.round_rewards)
    rewards = _call(where, r, "step", game.step, actions)
    if rewards is None:
        if game.round != r or len(game.round_rewards) != ended:
            raise where.error(r, "step", "step returned None (the round goes on) but the round or "
                                         "rewards moved")
        return
    if not (isinstance(rewards, tuple) and len(rewards) == 2 and all(isinstance(x, float) for x in rewards)):
        raise where.error(r, "step", f"a round's rewards must be a tuple of two floats, got {rewards!r}")
    if game.round != r + 1 or list(game.round_rewards[ended:]) != [rewards]:
        raise where.error(r, "step", (
            f"step ended the round with {rewards} but then round is {game.round} and the new "
            f"round_rewards are {_short(game.round_rewards[ended:])}"
        ))
    welfare, best = sum(game.returns()), _call(where, r, "max-welfare", game.max_welfare)
    if welfare > best + 1e-9:
        raise where.error(r, "max-welfare", (
            f"both seats got {welfare:g} so far, above max_welfare() = {best:g}"
        ))


@dataclass(frozen=True)
class _Snapshot:
    """What may not change until a legal step: round, rewards, pending specs, their seats' observations."""

    round: int
    rewards: tuple[tuple[float, float], ...]
    pending: dict[Seat, ActionSpec]
    observations: dict[Seat, str]


def _snapshot(game: Game[Any, Any], observations: dict[Seat, str]) -> _Snapshot:
    return _Snapshot(game.round, tuple(game.round_rewards), dict(game.pending()), observations)


def _check_unchanged(game: Game[Any, Any], where: _Where, before: _Snapshot, check: str, by: str) -> None:
    """The game is as in ``before``, after ``by`` (something that must not change it)."""
    now = _snapshot(game, {seat: game.observation(seat) for seat in before.observations})
    for name in ("round", "rewards", "pending", "observations"):
        if getattr(now, name) != getattr(before, name):
            raise where.error(before.round, check, (
                f"{by} changed the game's {name}: {_short(getattr(before, name))}, then "
                f"{_short(getattr(now, name))}"
            ))


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
def _random_action(spec: ActionSpec, rng: random.Random) -> Action:
    """A uniformly drawn legal action for ``spec`` (a message from :data:`MESSAGES`)."""
    if isinstance(spec, ChoiceSpec):
        return Choice(rng.randrange(len(spec.options)))
    if isinstance(spec, ProposalSpec):
        return Proposal(tuple(rng.randint(0, spec.high) for _ in spec.fields))
    return Message(rng.choice(MESSAGES)[: spec.max_chars].strip())


def _canonical(spec: ActionSpec, action: Action) -> str:
    """The text a well-behaved player writes for ``action`` (``spec.render``)."""
    if isinstance(spec, ChoiceSpec) and isinstance(action, Choice):
        return spec.render(action.index)
    if isinstance(spec, ProposalSpec) and isinstance(action, Proposal):
        return spec.render(action.counts)
    if isinstance(spec, MessageSpec) and isinstance(action, Message):
        return spec.render(action.text)
    raise TypeError(f"{action!r} does not go with {spec!r}")


def _fits(spec: ActionSpec, action: object) -> bool:
    """Whether ``action`` is an action that fits ``spec``."""
    if not isinstance(action, Choice | Proposal | Message):
        return False
    try:
        check_action(spec, action)
    except ValueError:
        return False
    return True


def _call(where: _Where, round_index: int, check: str, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)``; an exception from the game becomes the failure of ``check``, chained."""
    try:
        return fn(*args)
    except Exception as error:
        call = f"{getattr(fn, '__name__', 'call')}({', '.join(_short(a) for a in args)})"
        raise where.error(round_index, check, f"{call} raised {type(error).__name__}: {error}") from error


def _short(value: object, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
