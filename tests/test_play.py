"""The batched play loop: seating, re-asking on bad output, fallbacks, batching."""

from collections.abc import Sequence

import pytest

from detente.games import make_game
from detente.games.base import Choice
from detente.policies.base import Decision, Policy
from detente.policies.scripted import make_scripted
from detente.rollout.play import play


class Scripted(Policy):
    """Replies from a fixed list, in order, whatever is asked; records every batch it got."""

    def __init__(self, replies: list[str]) -> None:
        self.name = "scripted-replies"
        self.replies = list(replies)
        self.batches: list[list[Decision]] = []

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        self.batches.append(list(decisions))
        return [self.replies.pop(0) for _ in decisions]


def test_invalid_reply_is_reasked_with_the_reason_then_accepted():
    game = make_game("ipd", n_rounds=1)
    player = Scripted(["I pick neither", "<B>"])
    episode = play([game], [(player, make_scripted("allc", game))], [0])[0]
    first, second = player.batches
    assert first[0].retry is None
    assert second[0].retry is not None and "no option found" in second[0].retry.reason
    own = [d for d in episode.decisions if d.seat == 0]
    assert own[0].valid and own[0].tries == 2 and own[0].action == Choice(1)
    assert game.returns() == (5.0, 0.0)


def test_garbage_until_the_last_try_takes_the_fallback_and_counts_it_invalid():
    game = make_game("ipd", n_rounds=2)
    player = Scripted(["<A><B>", "", "???"] * 2)
    episode = play([game], [(player, make_scripted("alld", game))], [0], max_tries=3)[0]
    assert episode.invalid == 2
    assert all(d.action == Choice(0) and d.tries == 3 for d in episode.decisions if d.seat == 0)
    assert game.done


def test_one_policy_answers_all_its_decisions_of_a_step_in_one_call():
    games = [make_game("ipd", n_rounds=3) for _ in range(4)]
    player = Scripted(["<A>"] * 24)
    play(games, [(player, player)] * 4, range(4))
    assert [len(batch) for batch in player.batches] == [8, 8, 8]
    assert {(d.slot, d.seat) for d in player.batches[0]} == {(s, t) for s in range(4) for t in (0, 1)}


def test_mismatched_lengths_are_rejected():
    game = make_game("ipd")
    allc = make_scripted("allc", game)
    with pytest.raises(ValueError, match="one seating, one seed and one stream per game"):
        play([game], [(allc, allc)], [0, 1])


def test_games_sharing_a_seed_differ_only_through_their_streams():
    games = [make_game("ipd", n_rounds=20) for _ in range(3)]
    player = make_scripted("random", games[0])
    play(games, [(player, player)] * 3, [7, 7, 7], streams=["a", "a", "b"])
    assert games[0].moves == games[1].moves
    assert games[0].moves != games[2].moves
