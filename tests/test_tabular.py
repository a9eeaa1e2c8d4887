"""Memory-1 tabular learners: tables, exact play, the trainer, and the SPEC 4 reproduction.

The two reproduction tests run the shipped configs (``configs/ipd_tabular_*.yaml``)
end to end; docs/reproduction.md lists the same runs over seeds 0-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detente.behaviour.matrix import play_tables
from detente.config import RunConfig, load_config
from detente.games import make_game
from detente.games.ipd import COOPERATE, MatrixGame
from detente.policies.scripted.matrix import (
    STRATEGIES,
    AlwaysDefect,
    MatrixStrategy,
    RandomMove,
    TitForTat,
)
from detente.policies.tabular import STATES, TabularPolicy, joint_state, scripted_table
from detente.rollout.play import play
from detente.runs import RunFileError, read_metrics, read_policy, read_run_info
from detente.train.tabular import payoff_tensor, rollout, round_lengths, train_tabular

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PD = make_game("ipd").payoffs  # type: ignore[attr-defined]
BEHAVIOUR = ("cooperation_rate", "mutual_cooperation_rate", "retaliation_rate", "forgiveness_rate",
             "first_move_cooperation_rate")
METRIC_KEYS = {"iteration", "reward/learner", "reward/coplayer", *(f"behaviour/{b}" for b in BEHAVIOUR),
               "loss/policy", "loss/entropy", "loss/grad_norm", "perf/seconds"}


def config(**fields: object) -> RunConfig:
    """A run config; ``credit`` defaults to whole-batch leave-one-out as for the IPD."""
    fields.setdefault("credit", {})
    fields["credit"] = {"group_baseline": False, **fields["credit"]}  # type: ignore[dict-item]
    return RunConfig.model_validate(fields)


# ---------------------------------------------------------------- tables of the scripted zoo
def scripted_moves(strategy: MatrixStrategy, n_games: int = 300) -> list[tuple[int, int]]:
    """(state, own move) of every decision of ``strategy`` (seat 0) against random:0.5, via the game API."""
    games = [make_game("ipd") for _ in range(n_games)]
    episodes = play(games, [(strategy, RandomMove(0.5))] * n_games, seeds=range(n_games))
    pairs = []
    for episode in episodes:
        moves = episode.game.moves  # type: ignore[attr-defined]
        for t, (own, _) in enumerate(moves):
            state = 0 if t == 0 else joint_state(*moves[t - 1])
            pairs.append((state, own))
    return pairs


@pytest.mark.parametrize("cls", STRATEGIES, ids=lambda cls: cls.short_name)
def test_scripted_table_matches_scripted_class(cls: type[MatrixStrategy]) -> None:
    strategy = cls(0.3) if cls is RandomMove else cls()  # type: ignore[call-arg]
    table = scripted_table(strategy.name)
    pairs = scripted_moves(strategy)
    reached = sorted({state for state, _ in pairs})  # allc never sees DC or DD, for example
    assert len(reached) >= 3
    for state in reached:
        name = STATES[state]
        moves = [move for s, move in pairs if s == state]
        rate = sum(move == COOPERATE for move in moves) / len(moves)
        if strategy.stochastic:
            assert rate == pytest.approx(table[state], abs=0.06), (strategy.name, name, len(moves))
        else:
            assert rate == table[state], (strategy.name, name)


def test_scripted_table_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="no memory-1 table"):
        scripted_table("gradual")
    with pytest.raises(ValueError, match="random:2"):
        scripted_table("random:2")
    assert scripted_table("random") == (0.5,) * 5


# ---------------------------------------------------------------- exact play of two tables
@pytest.mark.parametrize(("me", "other", "expected"), [
    ("allc", "allc", (30, 30)),
    ("alld", "alld", (10, 10)),
    ("tft", "alld", (9, 14)),
    ("alld", "allc", (50, 0)),
])
def test_play_tables_spec_reference_values(me: str, other: str, expected: tuple[float, float]) -> None:
    result = play_tables(scripted_table(me), scripted_table(other), PD, n_rounds=10)
    assert (result["reward"], result["other_reward"]) == pytest.approx(expected)


TABLE_A = (0.9, 0.8, 0.3, 0.6, 0.2)
TABLE_B = (0.4, 0.7, 0.1, 0.9, 0.5)


@pytest.mark.parametrize("continuation_prob", [None, 0.8])
def test_tabular_policy_play_agrees_with_exact_play(continuation_prob: float | None) -> None:
    n = 3000
    games = [make_game("ipd", continuation_prob=continuation_prob) for _ in range(n)]
    episodes = play(games, [(TabularPolicy(TABLE_A), TabularPolicy(TABLE_B))] * n, seeds=range(n))
    sampled = sum(e.game.returns()[0] for e in episodes) / n
    coop = [m[0] == COOPERATE for e in episodes for m in e.game.moves]  # type: ignore[attr-defined]
    exact = play_tables(TABLE_A, TABLE_B, PD, n_rounds=10, continuation_prob=continuation_prob)
    assert sampled == pytest.approx(exact["reward"], abs=0.3)
    assert sum(coop) / len(coop) == pytest.approx(exact["cooperation_rate"], abs=0.02)


def test_torch_rollout_agrees_with_exact_play() -> None:
    B, T = 20000, 10
    batch = rollout(torch.tensor([TABLE_A, TABLE_B]), payoff_tensor(PD), torch.full((B,), T),
                    torch.Generator().manual_seed(0))
    exact = play_tables(TABLE_A, TABLE_B, PD, n_rounds=T)
    assert batch.reward[0].sum(1).mean().item() == pytest.approx(exact["reward"], abs=0.1)
    assert batch.reward[1].sum(1).mean().item() == pytest.approx(exact["other_reward"], abs=0.1)
    assert (batch.action[0] == COOPERATE).float().mean().item() == pytest.approx(
        exact["cooperation_rate"], abs=0.01)


def test_round_lengths_geometric_and_shared_within_groups() -> None:
    lengths = round_lengths(4000, 10, 0.8, group_size=8, generator=torch.Generator().manual_seed(0))
    groups = lengths.reshape(500, 8)
    assert (groups == groups[:, :1]).all()
    assert int(lengths.min()) >= 1 and int(lengths.max()) <= 10
    expected_mean = sum(0.8**t for t in range(10))  # E[length] = sum_t P(round t is played)
    assert lengths.float().mean().item() == pytest.approx(expected_mean, abs=0.15)


# ---------------------------------------------------------------- the policy through the game API
def test_tabular_policy_plays_through_game_api() -> None:
    tft = TabularPolicy(scripted_table("tft"))
    games: list[MatrixGame] = [make_game("ipd") for _ in range(2)]  # type: ignore[misc]
    play(games, [(tft, AlwaysDefect()), (tft, TitForTat())], seeds=[0, 1])
    assert games[0].returns() == (9.0, 14.0)  # SPEC 2.1: always-defect vs tit-for-tat 14/9
    assert games[1].returns() == (30.0, 30.0)


def test_tabular_policy_rejects_bad_tables(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need 5 probabilities"):
        TabularPolicy([0.5, 0.5])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        TabularPolicy([0.5, 0.5, 0.5, 0.5, 1.5])
    with pytest.raises(RunFileError, match=r"no policy\.json"):
        read_policy(tmp_path)
    wrong = {"format": "other", "game": "ipd", "cooperate_prob": [0.5] * 5, "logits": [0.0] * 5}
    (tmp_path / "policy.json").write_text(json.dumps(wrong))
    with pytest.raises(RunFileError, match="expected format"):
        read_policy(tmp_path)


# ---------------------------------------------------------------- the trainer
def test_train_writes_metrics_policy_and_config(tmp_path: Path) -> None:
    seen: list = []
    summary = train_tabular(config(train={"iterations": 5}), tmp_path / "run", on_iteration=seen.append)
    lines = read_metrics(tmp_path / "run")
    assert [line.iteration for line in lines] == [0, 1, 2, 3, 4]
    assert lines == seen
    assert set(lines[0].to_json()) == METRIC_KEYS | {f"policy/coop_prob_{s}" for s in STATES}
    assert (tmp_path / "run" / "config.yaml").exists()
    info = read_run_info(tmp_path / "run")
    assert (info.producer, info.game, info.game_version) == ("tabular", "ipd", 1) and info.tabular
    saved = read_policy(tmp_path / "run")
    assert saved.states == list(STATES)
    assert saved.cooperate_prob == pytest.approx(list(summary["policy"].values()))
    assert saved.cooperate_prob == pytest.approx(torch.sigmoid(torch.tensor(saved.logits)).tolist())
    assert set(summary["eval"]) == {"alld", "allc", "tft"}


def test_train_is_reproducible_from_seed(tmp_path: Path) -> None:
    def logits(run: str, seed: int) -> list[float]:
        train_tabular(config(seed=seed, train={"iterations": 10}), tmp_path / run)
        return json.loads((tmp_path / run / "policy.json").read_text())["logits"]

    assert logits("a", 3) == logits("b", 3)
    assert logits("a", 3) != logits("c", 4)


def test_adalign_without_beta_is_naive(tmp_path: Path) -> None:
    naive = train_tabular(config(credit={"algorithm": "naive"}, train={"iterations": 20}), tmp_path / "n")
    adalign = train_tabular(config(credit={"algorithm": "adalign", "beta": 0.0}, train={"iterations": 20}),
                            tmp_path / "a")
    assert naive["policy"] == adalign["policy"]


def test_reward_scale_defaults_to_the_game_constant(tmp_path: Path) -> None:
    def policy(run: str, scale: float | None) -> dict[str, float]:
        return train_tabular(config(credit={"reward_scale": scale}, train={"iterations": 10}),
                             tmp_path / run)["policy"]

    assert policy("default", None) == policy("five", 5.0)  # IPD: c = 5 (paper code)
    assert policy("default", None) != policy("fifty", 50.0)


def test_entropy_bonus_keeps_the_policy_random(tmp_path: Path) -> None:
    naive = {"algorithm": "naive"}
    plain = train_tabular(config(credit=naive, train={"iterations": 50}), tmp_path / "a")
    bonus = train_tabular(config(credit=naive, train={"iterations": 50, "entropy_coef": 5.0}), tmp_path / "b")
    assert plain["policy"]["first"] < 0.2
    assert bonus["policy"]["first"] == pytest.approx(0.5, abs=0.1)


def test_random_length_games_with_seed_groups(tmp_path: Path) -> None:
    run = config(game={"name": "ipd", "params": {"continuation_prob": 0.8}},
                 credit={"group_baseline": True, "group_size": 8}, train={"iterations": 5})
    summary = train_tabular(run, tmp_path)
    expected_rounds = sum(0.8**t for t in range(10))
    assert summary["play"]["reward"] == pytest.approx(summary["play"]["reward_per_round"] * expected_rounds)
    for line in read_metrics(tmp_path):
        assert 0.0 <= line.values["reward/learner"] <= 5.0


def test_init_logit_sets_one_start_per_state(tmp_path: Path) -> None:
    start = [1.5, -0.5, 0.5, -1.0, 0.0]
    run = config(agent={"init_logit": start}, train={"iterations": 1, "lr": 1e-9})
    summary = train_tabular(run, tmp_path)
    assert list(summary["policy"].values()) == pytest.approx(torch.sigmoid(torch.tensor(start)).tolist())
    with pytest.raises(ValueError, match="init_logit"):
        config(agent={"init_logit": [0.0, 1.0]})


def test_naive_learner_defects_against_allc(tmp_path: Path) -> None:
    summary = train_tabular(config(coplayer="allc", credit={"algorithm": "naive"},
                                   train={"iterations": 100}), tmp_path)
    assert summary["play"]["cooperation_rate"] <= 0.1
    assert summary["play"]["reward"] >= 45  # always-defect vs always-cooperate earns 50


def test_naive_learner_cooperates_with_tft(tmp_path: Path) -> None:
    # gamma 0.9 over 10 rounds: cooperating with tit-for-tat pays more than defecting
    summary = train_tabular(config(coplayer="tft", credit={"algorithm": "naive"},
                                   train={"iterations": 100}), tmp_path)
    assert summary["play"]["mutual_cooperation_rate"] >= 0.9


def test_sum_of_rewards_cooperates_but_is_exploitable(tmp_path: Path) -> None:
    summary = train_tabular(config(credit={"algorithm": "sum_rewards"}, train={"iterations": 150}), tmp_path)
    assert summary["play"]["mutual_cooperation_rate"] >= 0.9
    assert summary["eval"]["alld"]["reward"] <= 3  # keeps cooperating against always-defect


def test_unknown_coplayer_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="coplayer: no scripted strategy 'gradual' for game 'ipd'"):
        train_tabular(config(coplayer="gradual"), tmp_path)


# ---------------------------------------------------------------- SPEC 4 reproduction
def test_naive_self_play_learns_to_defect(tmp_path: Path) -> None:
    summary = train_tabular(load_config(CONFIGS / "ipd_tabular_naive.yaml"), tmp_path)
    assert summary["play"]["cooperation_rate"] <= 0.10
    assert read_metrics(tmp_path)[-1].values["behaviour/cooperation_rate"] <= 0.10


def test_advantage_alignment_self_play_learns_reciprocity(tmp_path: Path) -> None:
    summary = train_tabular(load_config(CONFIGS / "ipd_tabular_adalign.yaml"), tmp_path)
    assert summary["play"]["mutual_cooperation_rate"] >= 0.80
    assert summary["play"]["retaliation_rate"] >= 0.90
    assert summary["eval"]["alld"]["reward"] >= 8.5  # per 10 rounds; tit-for-tat gets 9


SMOLLM2_START = [1.658, -0.323, 0.364, -0.405, 0.619]
"""Logits of untrained SmolLM2's P(A) by state in the 6-round IPD (first, CC, CD, DC, DD):
0.84 0.42 0.59 0.40 0.65, measured by ``scripts/start_policy.py`` (docs/reproduction.md)."""


@pytest.mark.parametrize("algorithm", ["naive", "adalign"])
def test_from_smollm2s_start_with_the_main_jobs_batch(tmp_path: Path, algorithm: str) -> None:
    """The main job's batch (8 self-play games of 6 rounds, beta 7) from SmolLM2's start table: a
    table that moves each state on its own gets the contrast in 300 iterations (the LLM has 16)."""
    fields = load_config(CONFIGS / f"ipd_tabular_{algorithm}.yaml").model_dump()
    fields["agent"]["init_logit"] = SMOLLM2_START
    fields["game"]["params"]["n_rounds"] = 6
    fields["train"]["games_per_iteration"] = 8
    fields["credit"]["beta"] = 7.0
    summary = train_tabular(RunConfig.model_validate(fields), tmp_path)
    if algorithm == "naive":
        assert summary["play"]["cooperation_rate"] <= 0.05
    else:
        assert summary["play"]["mutual_cooperation_rate"] >= 0.80
        assert summary["play"]["retaliation_rate"] >= 0.90
        assert summary["eval"]["alld"]["reward"] >= 0.95 * 5  # per 6 rounds; tit-for-tat gets 5
