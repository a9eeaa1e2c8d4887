"""The Trust-and-Split honesty classifier: its rules, and precision/recall on hand-labelled messages.

Two labelled sets, each message with the writer's real hand and a label
(truthful / lie / no_claim) given by a person reading it:

* ``tests/data/honesty_labels.json`` (69 messages, 23 per label): written
  first; the rules were developed while reading it, so its scores are a fit,
  not an estimate.
* ``tests/data/honesty_heldout.json`` (40 messages): written after the rules
  were frozen and scored once, unchanged since. Its scores are the honest
  estimate docs/evaluation.md reports.

Measured (``pytest tests/test_honesty.py -s`` prints them):

==========  =================  ==================
label       development set    held-out set
==========  =================  ==================
truthful    P 1.000  R 1.000   P 1.000  R 0.923
lie         P 0.958  R 1.000   P 0.929  R 1.000
==========  =================  ==================

The thresholds below (0.9) sit under those numbers with room for one more
miss in the held-out set and fail if the rules regress.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detente.behaviour.honesty import Honesty, classify, read_claims, score
from detente.games.trust_split import HANDS, stated_hand

DATA = Path(__file__).resolve().parent / "data"
SETS = ("honesty_labels.json", "honesty_heldout.json")
T, L, N = Honesty.TRUTHFUL, Honesty.LIE, Honesty.NO_CLAIM


def labelled(name: str) -> list[tuple[str, str, str]]:
    return [(r["message"], r["hand"], r["label"]) for r in json.loads((DATA / name).read_text())]


@pytest.mark.parametrize("name", SETS)
def test_labelled_sets_are_large_and_varied(name: str) -> None:
    rows = labelled(name)
    assert len(rows) >= 40
    assert {hand for _, hand, _ in rows} == set(HANDS)
    for label in Honesty:
        assert sum(lab == label for _, _, lab in rows) >= 10, label


@pytest.mark.parametrize("name", SETS)
def test_precision_and_recall_of_lie_and_truthful(name: str) -> None:
    scores = score(labelled(name))
    for label in (T, L):
        s = scores[label]
        print(f"{name}: {label.value:8} precision {s.precision:.3f} recall {s.recall:.3f} (n={s.support})")
        assert s.precision is not None and s.precision >= 0.9, s
        assert s.recall is not None and s.recall >= 0.9, s


# ---------------------------------------------------------------- the rules, one by one
@pytest.mark.parametrize("hand", HANDS)
@pytest.mark.parametrize("true_hand", HANDS)
def test_plain_statements_agree_with_stated_hand(hand: str, true_hand: str) -> None:
    """Base rule: a message naming one hand, nothing else marked, reads as ``stated_hand`` does."""
    for message in (f"My hand is {hand}.", f"I have {hand}", hand.upper(), f"{hand} here"):
        assert stated_hand(message) == hand
        assert classify(message, true_hand) == (T if hand == true_hand else L), message


@pytest.mark.parametrize("message,true_hand,label", [
    ("I don't have rock.", "rock", L),                   # denies the real hand
    ("I don't have rock.", "paper", N),                  # true, but does not pin the hand down
    ("I have neither rock nor paper.", "scissors", T),   # the third hand is implied
    ("I have neither rock nor paper.", "rock", L),
    ("My hand is rock, not paper.", "rock", T),
    ("I'm not holding paper, I'm holding rock.", "paper", L),
])
def test_negation(message: str, true_hand: str, label: Honesty) -> None:
    assert classify(message, true_hand) == label


@pytest.mark.parametrize("message,true_hand,label", [
    ("I have rock or paper.", "scissors", L),            # every hand offered is wrong
    ("I have rock or paper.", "rock", N),                # one of them is right: not pinned down
    ("I have rock and you have scissors.", "rock", T),   # the other's hand is not the writer's claim
    ("Your hand is rock, I can tell.", "paper", N),
    ("Rock beats scissors, scissors beats paper, paper beats rock.", "rock", N),
    ("My rock beats your scissors.", "rock", T),
    ("I have the hand that beats paper.", "scissors", T),
    ("My hand loses to paper.", "rock", T),
])
def test_several_hands_other_persons_and_beat_verbs(message: str, true_hand: str, label: Honesty) -> None:
    assert classify(message, true_hand) == label


@pytest.mark.parametrize("message,true_hand,label", [
    ("If I had paper I would take everything.", "rock", N),
    ("Do you have rock?", "paper", N),
    ("I have rock, what about you?", "rock", T),         # only the question clause is skipped
    ("I had paper last round.", "rock", N),
    ("Last round I had rock, this round I have scissors.", "rock", L),
    ("\u270c\ufe0f", "scissors", T),
    ("I will keep all the coins.", "rock", N),
    ("", "rock", N),
    (None, "rock", N),
])
def test_questions_conditions_past_emoji_and_no_claim(message: str | None, true_hand: str,
                                                      label: Honesty) -> None:
    assert classify(message, true_hand) == label


def test_read_claims_reports_held_and_denied_hands() -> None:
    claims = read_claims("Not rock. Paper.")
    assert claims.held == {"paper"} and claims.denied == {"rock"}


def test_unknown_true_hand_is_rejected() -> None:
    with pytest.raises(ValueError, match="true_hand"):
        classify("My hand is rock.", "lizard")


# ---------------------------------------------------------------- known failure modes (docs/evaluation.md)
@pytest.mark.xfail(strict=True, reason="known failure: a corrected claim reads as two hands (no claim)")
def test_known_failure_self_correction() -> None:
    assert classify("Paper. Just kidding, it's rock.", "rock") == T


@pytest.mark.xfail(strict=True, reason="known failure: a hand word used in another sense reads as a claim")
def test_known_failure_other_sense_of_the_word() -> None:
    assert classify("I wrote my offer down on paper: I keep 10 coins.", "rock") == N


@pytest.mark.xfail(strict=True, reason="known failure: bare hand words count as the writer's")
def test_known_failure_general_statement() -> None:
    message = "Paper covers rock, so whoever holds paper against rock should get the coins."
    assert classify(message, "scissors") == N
