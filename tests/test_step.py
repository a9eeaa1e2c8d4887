"""The step-by-step driver (rollout/step.py): it plays what play() plays, one outside answer at a time."""

from collections.abc import Sequence

import pytest

from detente.games import make_game
from detente.games.base import MessageSpec, ProposalSpec
from detente.policies.base import Decision, Policy
from detente.policies.scripted import make_scripted
from detente.rollout.play import play
from detente.rollout.step import Match


class Replies(Policy):
    """Replies from a fixed list, in order."""

    def __init__(self, replies: list[str]) -> None:
        self.name = "replies"
        self.replies = list(replies)

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        return [self.replies.pop(0) for _ in decisions]


@pytest.mark.parametrize(("game_name", "opponent", "answers"), [
    ("ipd", "tft", ["<A>", "<B>", "<B>", "<A>"]),
    ("trust_split", "truthful", ["My hand is rock.", "<keep coins=6>", "hi", "<keep coins=10>"]),
])
@pytest.mark.parametrize("seat", [0, 1])
def test_a_match_plays_the_game_play_plays(game_name, opponent, answers, seat):
    game = make_game(game_name, n_rounds=len(answers) // (1 if game_name == "ipd" else 2))
    seating = [make_scripted(opponent, game)] * 2
    seating[seat] = Replies(answers)
    expected, = play([game], [tuple(seating)], [5])

    match = Match(make_game(game_name, n_rounds=game.n_rounds), make_scripted(opponent, game), seat, 5)
    for text in answers:
        assert match.answer(text) is None
    assert match.done and match.turn is None
    assert match.game.round_rewards == game.round_rewards
    played = sorted((d.round, d.seat, d.raw) for d in match.episode.decisions)
    assert played == sorted((d.round, d.seat, d.raw) for d in expected.decisions)
    line = match.transcript()
    assert line.players[seat] == "human" and line.seed == 5 and line.round_rewards == game.round_rewards


def test_a_refused_answer_changes_nothing_but_the_reason_and_counts_as_a_try():
    match = Match(make_game("ipd", n_rounds=2), make_scripted("alld", make_game("ipd")), 0, 0)
    for typo in ["maybe", "", "<A><B>", "C"]:
        error = match.answer(typo)
        assert error is not None and match.turn is not None and match.turn.retry == error
        assert match.game.round == 0 and match.episode.decisions[-1].seat == 1  # only alld has acted
    assert match.answer("<B>") is None
    assert match.turn is not None and match.turn.retry is None and match.game.round == 1
    mine = [d for d in match.episode.decisions if d.seat == 0]
    assert [(d.tries, d.valid) for d in mine] == [(5, True)]


def test_the_opponent_acts_before_the_outside_seat_is_asked():
    # Trust-and-Split, seed 0: seat 1 speaks first, so the person in seat 0 has its message at once
    game = make_game("trust_split", n_rounds=1)
    match = Match(game, make_scripted("greedy", game), 0, 0)
    assert isinstance(match.turn.spec, MessageSpec)
    assert 'The other agent says: "I will keep all the coins."' in match.game.observation(0)
    assert match.answer("<<message_start>>fine<<message_end>>") is None
    assert isinstance(match.turn.spec, ProposalSpec)
    assert match.answer("<keep coins=3>") is None and match.done
    with pytest.raises(RuntimeError, match="the game is over"):
        match.answer("<keep coins=3>")
