"""What a person types, turned into actions (interpret), and HumanPolicy in real games with fake I/O."""

from __future__ import annotations

import pytest

from detente.games import make_game
from detente.games.base import Choice, Message, ParseError, Proposal, parse_action
from detente.games.deal import MESSAGE as DEAL_MESSAGE
from detente.games.deal import proposal_spec
from detente.games.ipd import MOVES
from detente.games.split import PROPOSAL as SPLIT_PROPOSAL
from detente.games.trust_split import MESSAGE as TAS_MESSAGE
from detente.games.trust_split import PROPOSAL as TAS_PROPOSAL
from detente.policies.human import HumanPolicy, PlayerQuit, hint, interpret
from detente.policies.scripted import make_scripted
from detente.rollout.play import play

DEAL_PROPOSAL = proposal_spec((1, 4, 2))  # fields books, hats, balls

RECOGNISED = [
    # (spec, typed, canonical text, the action the game parses from it)
    (MOVES, "A", "<A>", Choice(0)),
    (MOVES, "b", "<B>", Choice(1)),
    (MOVES, "<A>", "<A>", Choice(0)),
    (MOVES, "  <b> ", "<B>", Choice(1)),
    (TAS_PROPOSAL, "7", "<keep coins=7>", Proposal((7,))),
    (TAS_PROPOSAL, "coins 7", "<keep coins=7>", Proposal((7,))),
    (TAS_PROPOSAL, "7 coins", "<keep coins=7>", Proposal((7,))),
    (TAS_PROPOSAL, "Coins: 0", "<keep coins=0>", Proposal((0,))),
    (TAS_MESSAGE, " My hand is rock. ", "<<message_start>>My hand is rock.<<message_end>>",
     Message("My hand is rock.")),
    (SPLIT_PROPOSAL, "hats 3 books 0 balls 10", "<keep hats=3 books=0 balls=10>", Proposal((3, 0, 10))),
    (SPLIT_PROPOSAL, "balls=10, hats=3", "<keep hats=3 books=0 balls=10>", Proposal((3, 0, 10))),
    (SPLIT_PROPOSAL, "3 hats and 10 balls", "<keep hats=3 books=0 balls=10>", Proposal((3, 0, 10))),
    (SPLIT_PROPOSAL, "HATS 3 BOOKS 2", "<keep hats=3 books=2 balls=0>", Proposal((3, 2, 0))),
    (SPLIT_PROPOSAL, "3 0 10", "<keep hats=3 books=0 balls=10>", Proposal((3, 0, 10))),
    (DEAL_PROPOSAL, "hats 4 books 1", "<take books=1 hats=4 balls=0>", Proposal((1, 4, 0))),
    (DEAL_PROPOSAL, "1 book, 2 balls", "<take books=1 hats=0 balls=2>", Proposal((1, 0, 2))),
    (DEAL_MESSAGE, "I want the hats", "<<message_start>>I want the hats<<message_end>>",
     Message("I want the hats")),
]


@pytest.mark.parametrize(("spec", "typed", "canonical", "action"), RECOGNISED,
                         ids=[f"{type(row[0]).__name__}:{row[1]!r}" for row in RECOGNISED])
def test_what_people_type_becomes_the_canonical_action(spec, typed, canonical, action):
    assert interpret(spec, typed) == canonical
    assert parse_action(spec, canonical) == action


UNCHANGED = [
    # (spec, typed): passed on as typed, so the game's parser judges it
    (MOVES, "C"),
    (MOVES, "A or B"),
    (MOVES, "cooperate"),
    (MOVES, ""),
    (TAS_PROPOSAL, "seven"),
    (TAS_PROPOSAL, "<keep coins=7>"),  # already canonical
    (TAS_PROPOSAL, "7 8"),
    (TAS_PROPOSAL, "2.5"),
    (TAS_MESSAGE, "<<message_start>>hi<<message_end>>"),
    (SPLIT_PROPOSAL, "hats 3 hats 4"),
    (SPLIT_PROPOSAL, "hats 3 socks 2"),
    (SPLIT_PROPOSAL, "3 10"),
    (SPLIT_PROPOSAL, "hats books 3 4"),
    (SPLIT_PROPOSAL, "I keep 3 hats"),
    (DEAL_PROPOSAL, "hats"),
]


@pytest.mark.parametrize(("spec", "typed"), UNCHANGED,
                         ids=[f"{type(row[0]).__name__}:{row[1]!r}" for row in UNCHANGED])
def test_unrecognised_input_is_passed_on_unchanged(spec, typed):
    assert interpret(spec, typed) == typed


def test_a_count_out_of_range_is_left_for_the_game_to_explain():
    assert interpret(TAS_PROPOSAL, "12") == "<keep coins=12>"
    error = parse_action(TAS_PROPOSAL, interpret(TAS_PROPOSAL, "12"))
    assert isinstance(error, ParseError) and error.reason == "coins=12 is outside 0..10"


def test_hints_say_what_to_type():
    assert hint(MOVES) == "type A or B"
    assert hint(TAS_PROPOSAL) == "type the number of coins, 0 to 10"
    assert hint(SPLIT_PROPOSAL) == ("type a count of each, 0 to 10, e.g. hats 5 books 5 balls 5 "
                                    "(one left out counts 0)")
    assert hint(TAS_MESSAGE) == "type your message, at most 500 characters"


class Terminal:
    """Fake I/O: answers prompts from a list, records everything shown and asked."""

    def __init__(self, typed: list[str | type[BaseException]]) -> None:
        self.typed = list(typed)
        self.shown: list[str] = []
        self.prompts: list[str] = []

    def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        answer = self.typed.pop(0)
        if isinstance(answer, type):
            raise answer
        return answer

    def show(self, text: str) -> None:
        self.shown.append(text)


def test_an_invalid_answer_is_explained_and_asked_again():
    terminal = Terminal(["maybe", "b", "A"])
    game = make_game("ipd", n_rounds=2)
    episode, = play([game], [(HumanPolicy(terminal.ask, terminal.show), make_scripted("allc", game))], [0])

    assert game.moves == [(1, 0), (0, 0)]
    assert [d.tries for d in episode.decisions if d.seat == 0] == [2, 1]
    assert all(d.valid for d in episode.decisions)
    shown = "\n".join(terminal.shown)
    assert shown.count("You are playing a game with another agent") == 1  # the rules, once
    assert "[not accepted: no option found; write exactly one of <A>, <B>]" in terminal.shown
    assert "Score so far: you 0, the other agent 0." in terminal.shown
    assert "Score so far: you 5, the other agent 0." in terminal.shown  # before round 2
    assert terminal.prompts == ["(type A or B) > "] * 3


def test_a_person_is_asked_until_the_answer_parses_not_defaulted_after_max_tries():
    typos = ["maybe", "C", "", "yes", "cooperate", "AB"]
    terminal = Terminal([*typos, "b"])
    game = make_game("ipd", n_rounds=1)
    episode, = play([game], [(HumanPolicy(terminal.ask, terminal.show), make_scripted("allc", game))], [0],
                    max_tries=3)
    mine, = [d for d in episode.decisions if d.seat == 0]
    assert mine.valid and mine.tries == len(typos) + 1 and game.moves == [(1, 0)]
    assert sum(text.startswith("[not accepted: ") for text in terminal.shown) == len(typos)
    assert terminal.shown[0].startswith("\n--- round 1 ---\n")


def test_a_trust_and_split_round_shows_the_other_agents_message():
    terminal = Terminal(["My hand is paper.", "7"])
    game = make_game("trust_split", n_rounds=1)
    # seed 0: the other agent (seat 1) speaks first
    play([game], [(HumanPolicy(terminal.ask, terminal.show), make_scripted("greedy", game))], [0])
    assert 'The other agent says: "I will keep all the coins."' in terminal.shown[0]
    assert game.messages[0][0] == "My hand is paper."
    assert game.coins == [(7, 10)]
    assert terminal.prompts == ["(type your message, at most 500 characters) > ",
                                "(type the number of coins, 0 to 10) > "]


@pytest.mark.parametrize("leaving", [EOFError, KeyboardInterrupt])
def test_end_of_input_or_ctrl_c_quits_the_game(leaving):
    terminal = Terminal(["A", leaving])
    game = make_game("ipd", n_rounds=3)
    with pytest.raises(PlayerQuit):
        play([game], [(HumanPolicy(terminal.ask, terminal.show), make_scripted("allc", game))], [0])
    assert game.moves == [(0, 0)]
