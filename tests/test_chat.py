"""The user turns every chat-based agent sends: observation, retry with the reason, or the empty text."""

import random
from dataclasses import replace

from detente.games import make_game
from detente.games.base import ParseError
from detente.policies.base import Decision
from detente.policies.chat import EMPTY_TEXT, RETRY_TEXT, user_turn


def first_decision(name: str) -> Decision:
    game = make_game(name, n_rounds=1)
    game.reset(0)
    seat, spec = next(iter(game.pending().items()))
    return Decision(game, seat, spec, slot=0, rng=random.Random(0))


def test_a_fresh_decision_sends_the_observation():
    decision = first_decision("ipd")
    assert user_turn(decision) == decision.observation
    assert "answer with <A> or <B>" in user_turn(decision)


def test_a_rejected_answer_sends_the_reason():
    decision = replace(first_decision("ipd"), retry=ParseError("no option found", "?"))
    assert user_turn(decision) == RETRY_TEXT.format(reason="no option found")
    assert user_turn(decision) == "Your previous answer was not accepted: no option found. Answer again."


class Silent:
    """A game that has told the seat nothing new."""

    def observation(self, seat: int) -> str:
        return ""


def test_nothing_new_sends_the_empty_text():
    decision = replace(first_decision("ipd"), game=Silent())  # type: ignore[arg-type]
    assert user_turn(decision) == EMPTY_TEXT
