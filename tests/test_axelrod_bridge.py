"""The Axelrod bridge: detente agents as axelrod.Player, in real Axelrod matches and tournaments."""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import pytest

axl = pytest.importorskip("axelrod")

from detente.agents import make_agent  # noqa: E402
from detente.cli import main  # noqa: E402
from detente.config import load_config, preset_path  # noqa: E402
from detente.eval.axelrod_bridge import (  # noqa: E402
    DetentePlayer,
    axelrod_tournament,
    resolve_strategy,
)
from detente.games import make_game  # noqa: E402
from detente.runs import TabularPolicyFile, write_config, write_policy  # noqa: E402

C, D = axl.Action.C, axl.Action.D
OPPONENTS = ("Cooperator", "Defector", "Alternator", "Random", "Grudger", "SuspiciousTitForTat",
             "FirstByJoss", "WinStayLoseShift", "TitForTat", "CyclerCCD")
TABLE = (0.0, 1.0, 0.0, 1.0, 1.0)
"""A memory-1 table that is no scripted strategy: defect first; after CC cooperate, after CD
defect, after DC and DD cooperate."""


def detente(spec: str) -> DetentePlayer:
    return DetentePlayer(make_agent(spec, make_game("ipd")))


def match(first: axl.Player, second: axl.Player, turns: int = 30, seed: int = 7) -> list[tuple]:
    return axl.Match((first, second), turns=turns, seed=seed).play()


def tabular_run(folder: Path, table: tuple[float, ...]) -> Path:
    """A tabular run folder as training writes it: the config and policy.json (exact 0/1 logits)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder, load_config(preset_path("ipd_tabular_naive")))
    logits = [50.0 if p == 1.0 else -50.0 if p == 0.0 else _logit(p) for p in table]
    record = TabularPolicyFile.from_logits(logits, "ipd")
    assert record.cooperate_prob == pytest.approx(list(table))
    write_policy(folder, record)
    return folder


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# ---------------------------------------------------------------- scripted agents = Axelrod's own
@pytest.mark.parametrize(("spec", "twin"), [
    ("tft", "TitForTat"), ("alld", "Defector"), ("allc", "Cooperator"), ("grim", "Grudger"),
    ("wsls", "WinStayLoseShift"), ("stft", "SuspiciousTitForTat"),
])
@pytest.mark.parametrize("opponent", OPPONENTS)
def test_scripted_agent_plays_exactly_like_its_axelrod_twin(spec: str, twin: str, opponent: str) -> None:
    ours = match(detente(spec), resolve_strategy(opponent))
    theirs = match(resolve_strategy(twin), resolve_strategy(opponent))
    assert ours == theirs
    assert match(resolve_strategy(opponent), detente(spec)) == match(resolve_strategy(opponent),
                                                                   resolve_strategy(twin))


def test_player_is_reset_and_cloned_for_each_match() -> None:
    player = detente("tft")
    first = match(player, axl.Defector(), turns=5)
    assert player.game is not None and len(player.game.moves) == 4 and len(player.decisions) == 5
    again = match(player, axl.Cooperator(), turns=5)  # a new match: fresh game, no memory of the last
    assert first == [(C, D)] + [(D, D)] * 4 and again == [(C, C)] * 5
    clone = player.clone()
    assert clone.policy is player.policy and clone.name == "detente:tft" and str(clone) == "detente:tft"
    assert clone.classifier["stochastic"] is False and clone.classifier["memory_depth"] == 1


# ---------------------------------------------------------------- tabular runs
def test_tabular_run_plays_its_table(tmp_path: Path) -> None:
    run = tabular_run(tmp_path / "run", TABLE)
    player = detente(f"run:{run}")
    assert player.classifier["stochastic"] is False and player.classifier["memory_depth"] == 1
    for opponent in OPPONENTS:
        moves = match(player, resolve_strategy(opponent), turns=40)
        assert moves[0][0] == D
        for (own, theirs), (next_own, _) in itertools.pairwise(moves):
            state = 1 + 2 * (own == D) + (theirs == D)
            assert next_own == (C if TABLE[state] == 1.0 else D), (opponent, moves)


def test_stochastic_tabular_run_follows_its_probability_and_the_match_seed(tmp_path: Path) -> None:
    run = tabular_run(tmp_path / "run", (0.7,) * 5)
    player = detente(f"run:{run}")
    assert player.classifier["stochastic"] is True
    moves = match(player, axl.Cooperator(), turns=2000, seed=3)
    rate = sum(own == C for own, _ in moves) / len(moves)
    assert rate == pytest.approx(0.7, abs=0.05)
    assert match(player, axl.Cooperator(), turns=2000, seed=3) == moves
    assert match(player, axl.Cooperator(), turns=2000, seed=4) != moves


# ---------------------------------------------------------------- the tournament
def test_tournament_ranks_always_defect_above_cooperator() -> None:
    result = axelrod_tournament("alld", ["Cooperator", "TitForTat"], turns=10, repetitions=2, seed=1)
    assert result.agent == "detente:alld" and result.n_players == 3
    assert result.ranked_names == ["detente:alld", "Tit For Tat", "Cooperator"]
    assert result.rank == result.ranked_names.index(result.agent) + 1 == 1
    assert [s.name for s in result.standings] == result.ranked_names
    assert [s.rank for s in result.standings] == [1, 2, 3]
    scores = {s.name: s.median_score for s in result.standings}
    # per turn, against the two others: alld 5 vs allc, (5 + 9*1)/10 vs tft; self-play not scored
    assert scores["detente:alld"] == pytest.approx((5 + 1.4) / 2)
    assert scores["Tit For Tat"] == pytest.approx((0.9 + 3) / 2)
    assert scores["Cooperator"] == pytest.approx((0 + 3) / 2)
    assert result.invalid == 0 and result.decisions > 0
    assert json.loads(json.dumps(result.to_json()))["rank"] == 1


def test_ties_never_flatter_the_agent() -> None:
    result = axelrod_tournament("tft", ["TitForTat", "Cooperator", "Grudger"], turns=20, repetitions=1)
    # all four cooperate throughout: a four-way tie, the detente agent listed last
    assert result.ranked_names[-1] == "detente:tft" and result.rank == 4
    assert {s.median_score for s in result.standings} == {3.0}


def test_unknown_repeated_and_cheating_strategies_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown Axelrod strategy 'TitForTet'.*TitForTat"):
        resolve_strategy("TitForTet")
    assert resolve_strategy("tit for tat").name == "Tit For Tat"
    assert resolve_strategy("Win-Stay Lose-Shift").name == "Win-Stay Lose-Shift"
    with pytest.raises(ValueError, match="inspects or manipulates"):
        resolve_strategy("Darwin")
    with pytest.raises(ValueError, match="only once"):
        axelrod_tournament("tft", ["TitForTat", "Tit For Tat"], turns=5, repetitions=1)
    with pytest.raises(ValueError, match="no scripted strategy"):
        axelrod_tournament("nosuch", ["TitForTat"], turns=5, repetitions=1)


# ---------------------------------------------------------------- a language model
@pytest.fixture(scope="module")
def tiny_policy():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from detente.policies.llm import LLMPolicy
    from tiny_model import tiny_lm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield LLMPolicy(tiny_lm(), None, name="tiny")
    torch.set_num_threads(threads)


def test_llm_agent_plays_a_match_and_sees_the_detente_observation(tiny_policy) -> None:
    player = DetentePlayer(tiny_policy)
    assert player.classifier["stochastic"] is True
    moves = match(player, axl.Alternator(), turns=8, seed=2)
    assert len(moves) == 8 and {own for own, _ in moves} <= {C, D}
    assert [theirs for _, theirs in moves] == [C, D] * 4
    chat = tiny_policy.chats[0][0]
    users = [m["content"] for m in chat.messages if m["role"] == "user"]
    replies = [m["content"] for m in chat.messages if m["role"] == "assistant"]
    assert len(users) == len(replies) == 8 and len(chat.records) == 8
    game = make_game("ipd")
    game.reset(0)
    assert users[0] == game.observation(0)  # the rules exactly as detente's ipd tells them
    for t in range(1, 8):
        label = "<A>" if moves[t - 1][1] == C else "<B>"
        assert users[t].startswith(f"The other agent played {label} last round.")
    assert replies == ["<A>" if own == C else "<B>" for own, _ in moves]
    assert all(d.valid for d in player.decisions)


def test_llm_agent_in_a_tournament_meets_itself_in_both_seats(tiny_policy) -> None:
    result = axelrod_tournament(tiny_policy, ["Alternator"], turns=4, repetitions=1, seed=0)
    assert result.n_players == 2 and result.rank == result.ranked_names.index("detente:tiny") + 1
    assert result.decisions == 4 + 2 * 4 and result.invalid == 0  # vs Alternator, then self-play
    # the last match was self-play: the two copies shared slot 0, one seat each
    assert [len(chat.records) for chat in tiny_policy.chats[0]] == [4, 4]


# ---------------------------------------------------------------- the command line
def test_cli_prints_the_rank_and_writes_axelrod_json(tmp_path: Path, capsys) -> None:
    run = tabular_run(tmp_path / "run", (1.0, 1.0, 0.0, 1.0, 0.0))  # tit-for-tat as a table
    code = main(["eval", "--axelrod", "--agents", f"run:{run}", "--axelrod-strategies", "Defector,Cooperator",
                 "--turns", "10", "--repetitions", "2", "--out", str(tmp_path / "out")])
    assert code == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "axelrod.json").read_text())
    agent = f"detente:run:{run}"
    assert data["agent"] == agent and data["players"] == 3
    assert data["turns"] == 10 and data["repetitions"] == 2 and data["seed"] == 0
    assert data["strategies"] == ["Defector", "Cooperator"]
    assert data["rank"] == data["ranked_names"].index(data["agent"]) + 1
    # tft vs Defector 0.9, vs Cooperator 3; Defector 1.4 and 5; Cooperator 0 and 3
    assert data["ranked_names"] == ["Defector", agent, "Cooperator"]
    assert f"{agent}: rank 2 of 3" in out and "wrote" in out


def test_cli_default_strategies(capsys) -> None:
    assert main(["eval", "--axelrod", "--agents", "alld", "--turns", "5", "--repetitions", "1"]) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "of 8" in out and "First by Joss" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--agents", "tft,alld"], "exactly one detente agent"),
    (["--agents", "tft", "--game", "stag_hunt"], "--game ipd"),
    (["--agents", "tft", "--param", "n_rounds=5"], "--turns"),
    (["--agents", "tft", "--axelrod-strategies", "TitForTet"], "did you mean"),
    (["--agents", "tft", "--axelrod-strategies", "Darwin"], "inspects or manipulates"),
    (["--agents", "nosuch"], "no scripted strategy"),
    (["--agents", "tft", "--turns", "0"], "must be >= 1"),
])
def test_cli_errors_are_one_line_and_status_2(argv: list[str], message: str, capsys) -> None:
    assert main(["eval", "--axelrod", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_cli_axelrod_options_need_axelrod(capsys) -> None:
    assert main(["eval", "--agents", "tft", "--turns", "10"]) == 2
    assert "go with --axelrod" in capsys.readouterr().err


def test_cli_without_axelrod_installed_says_how_to_install(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "axelrod", None)  # import axelrod now fails as if not installed
    monkeypatch.delitem(sys.modules, "detente.eval.axelrod_bridge")
    assert main(["eval", "--axelrod", "--agents", "tft"]) == 2
    assert "pip install 'detente[axelrod]'" in capsys.readouterr().err
