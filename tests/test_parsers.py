"""Parsing raw text: never raises, and canonical renderings round-trip.

Property tests (hypothesis) feed arbitrary text to every spec that every
registered game produces; example tests pin the canonical forms and the
lenient readings players rely on.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.games import GAMES, make_game
from detente.games.base import (
    ActionSpec,
    Choice,
    ChoiceSpec,
    Game,
    Message,
    MessageSpec,
    ParseError,
    Proposal,
    ProposalSpec,
    parse_action,
)
from detente.games.deal import proposal_spec
from detente.games.split import PROPOSAL as SPLIT_PROPOSAL
from detente.games.trust_split import MESSAGE as TAS_MESSAGE
from detente.games.trust_split import PROPOSAL as TAS_PROPOSAL
from detente.games.trust_split import stated_hand
from detente.policies.base import Decision, Policy
from detente.policies.scripted import make_scripted, scripted_names
from detente.rollout.play import play

NAMES = sorted(GAMES)


def specs_of(name: str) -> list[ActionSpec]:
    """Every distinct spec a game asks for over a few seeded games."""
    specs: list[ActionSpec] = []
    probe = make_game(name)
    policy = make_scripted(scripted_names(probe)[0], probe)
    for seed in range(3):
        game = make_game(name)
        game.reset(seed)
        while not game.done:
            pending = game.pending()
            specs.extend(spec for spec in pending.values() if spec not in specs)
            game.step({seat: game.parse(seat, raw) for seat, raw in zip(
                pending, policy.act(_decisions(game, pending)), strict=True)})
    return specs


def _decisions(game: Game, pending: dict[int, ActionSpec]) -> list[Decision]:
    return [Decision(game, seat, spec, 0, random.Random(seat)) for seat, spec in pending.items()]


SPECS = {name: specs_of(name) for name in NAMES}

FRAGMENTS = st.sampled_from([
    "<A>", "<B>", "<keep ", "hats=", "books:", "balls =", "coins=", "coins:", "=", ":", "-", "-3", "0",
    "10", "11", "99999999999999999999", " ", "\n", ">", "<<message_start>>", "<<message_end>>",
    "rock", "PAPER", "scissors", "HATS=2", "\u00e9\u4e2d\U0001f600", "\x00",
])
NOISY_TEXT = st.one_of(
    st.text(max_size=600),
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=5)), max_size=40).map("".join),
)
ACTIONS = (Choice, Proposal, Message, ParseError)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(raw=NOISY_TEXT)
def test_parse_never_raises(name: str, raw: str) -> None:
    for spec in SPECS[name]:
        result = parse_action(spec, raw)
        assert isinstance(result, ACTIONS)
        if isinstance(result, Proposal):
            assert len(result.counts) == len(spec.fields)
            assert all(0 <= c <= spec.high for c in result.counts)
        if isinstance(result, Message):
            assert len(result.text) <= spec.max_chars
        if isinstance(result, Choice):
            assert 0 <= result.index < len(spec.options)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=50, deadline=None)
@given(raw=NOISY_TEXT)
def test_game_parse_never_raises(name: str, raw: str) -> None:
    game = make_game(name)
    game.reset(0)
    for seat in (0, 1):
        assert isinstance(game.parse(seat, raw), ACTIONS)


@pytest.mark.parametrize("name", NAMES)
def test_non_text_is_a_parse_error(name: str) -> None:
    for spec in SPECS[name]:
        assert isinstance(parse_action(spec, None), ParseError)  # type: ignore[arg-type]
        assert isinstance(parse_action(spec, 42), ParseError)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_every_game_asks_for_something(name: str) -> None:
    assert SPECS[name], name


# --------------------------------------------------------------------------
# Canonical renderings round-trip
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_canonical_rendering_round_trips(name: str, data: st.DataObject) -> None:
    for spec in SPECS[name]:
        if isinstance(spec, ChoiceSpec):
            index = data.draw(st.integers(0, len(spec.options) - 1))
            assert parse_action(spec, spec.render(index)) == Choice(index)
        elif isinstance(spec, ProposalSpec):
            counts = data.draw(st.tuples(*[st.integers(0, spec.high)] * len(spec.fields)))
            assert parse_action(spec, spec.render(counts)) == Proposal(counts)
        else:
            text = data.draw(st.text(max_size=spec.max_chars).map(str.strip).filter(
                lambda t, spec=spec: spec.start not in t and spec.end not in t))
            assert parse_action(spec, spec.render(text)) == Message(text)


@pytest.mark.parametrize(("spec", "raw", "expected"), [
    (SPLIT_PROPOSAL, "<keep hats=10 books=0 balls=5>", Proposal((10, 0, 5))),
    (SPLIT_PROPOSAL, "I keep hats: 3 and balls = 2", Proposal((3, 0, 2))),  # books left out: 0
    (SPLIT_PROPOSAL, "<KEEP HATS=1 BOOKS=2 BALLS=3>", Proposal((1, 2, 3))),
    (SPLIT_PROPOSAL, "hats=4, then again hats=4", Proposal((4, 0, 0))),
    (TAS_PROPOSAL, "<keep coins=7>", Proposal((7,))),
    (TAS_PROPOSAL, "Thinking... I will keep coins: 0", Proposal((0,))),
    (proposal_spec((1, 4, 2)), "<take books=1 hats=2 balls=0>", Proposal((1, 2, 0))),
    (TAS_MESSAGE, "<<message_start>> My hand is rock. <<message_end>>", Message("My hand is rock.")),
    (TAS_MESSAGE, "no delimiters at all", Message("no delimiters at all")),
    (TAS_MESSAGE, "chatter <<message_start>>hi<<message_end>> more", Message("hi")),
    (TAS_MESSAGE, "", Message("")),
])
def test_lenient_readings(spec: ActionSpec, raw: str, expected: object) -> None:
    assert parse_action(spec, raw) == expected


@pytest.mark.parametrize(("spec", "raw", "reason"), [
    (SPLIT_PROPOSAL, "<keep hats=11 books=0 balls=0>", "outside 0..10"),
    (SPLIT_PROPOSAL, "<keep hats=-1>", "outside 0..10"),
    (SPLIT_PROPOSAL, "hats=3 hats=4", "more than once"),
    (SPLIT_PROPOSAL, "I keep everything", "no count found"),
    (TAS_PROPOSAL, "<keep hats=3>", "no count found"),
    (proposal_spec((1, 4, 2)), "<take books=5>", "outside 0..4"),
    (TAS_MESSAGE, "x" * 501, "limit is 500"),
])
def test_invalid_texts_explain_why(spec: ActionSpec, raw: str, reason: str) -> None:
    result = parse_action(spec, raw)
    assert isinstance(result, ParseError)
    assert reason in result.reason
    assert result.raw == raw


def test_message_limit_is_inclusive() -> None:
    assert parse_action(TAS_MESSAGE, "x" * 500) == Message("x" * 500)
    assert isinstance(TAS_MESSAGE, MessageSpec) and TAS_MESSAGE.max_chars == 500


@pytest.mark.parametrize(("text", "hand"), [
    ("My hand is rock.", "rock"),
    ("I HOLD Paper, honestly. paper!", "paper"),
    ("scissors", "scissors"),
    ("rock beats scissors", None),   # two different hands: nothing stated
    ("I will keep all the coins.", None),
    ("rocks and papers", None),      # whole words only
    ("", None),
    (None, None),
])
def test_stated_hand(text: str | None, hand: str | None) -> None:
    assert stated_hand(text) == hand


def test_play_retries_then_falls_back_on_unparseable_text() -> None:
    """A reply that never parses costs the player its decision, not the batch."""

    class Mute(Policy):
        name = "mute"

        def act(self, decisions):
            return ["I refuse to answer."] * len(decisions)

    game = make_game("split", n_rounds=2)
    (episode,) = play([game], [(Mute(), make_scripted("greedy", game))], [0], max_tries=2)
    assert game.done
    mine = [d for d in episode.decisions if d.seat == 0]
    assert [d.valid for d in mine] == [False, False]
    assert all(d.tries == 2 and d.action == Proposal((0, 0, 0)) for d in mine)
