"""The credit-analysis scripts of docs/reproduction.md still compute what the docs say they show."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_credit_signs_by_item_kind():
    """Claims uniform on 4..10: naive credit favours larger claims of every kind pooled; sum-of-rewards
    pushes claims on items the claimant values less down, yet pooled over kinds still up, by less."""
    split_credit = load("split_credit")
    args = argparse.Namespace(rounds=4, games=8, group=4, batches=300, low=4, high=10, greedy=0.0,
                              gamma=0.9, beta=1.0, seed=0)
    naive = split_credit.covariances("naive", args)
    welfare = split_credit.covariances("sum_rewards", args)
    assert naive["more"] > 0 and naive["all"] > 0
    assert welfare["less"] < 0 < welfare["more"]
    assert 0 < welfare["all"] < naive["all"]


def test_credit_by_round_pooled_naive_credit_favours_defection():
    """History-blind play at P(A) = 0.5: defecting earns more credit than cooperating under naive RL."""
    credit_by_round = load("credit_by_round")
    args = argparse.Namespace(rounds=6, games=8, batches=200, noise=0.15, gamma=0.9, cooperate=0.5, seed=0)
    diffs = credit_by_round.defect_minus_cooperate(0.0, args)
    assert len(diffs) == 6 and sum(diffs) / 6 > 0.1


def test_credit_by_round_memory1_pushes_at_smollm2s_start():
    """From untrained SmolLM2's measured table (docs/reproduction.md), Advantage Alignment at beta 7
    pushes retaliation after (A, B) and a return to A after (B, A), naive credit neither."""
    credit_by_round = load("credit_by_round")
    args = argparse.Namespace(rounds=6, games=8, batches=100, gamma=0.9, seed=0,
                              memory1=[0.84, 0.42, 0.59, 0.40, 0.65])
    naive = credit_by_round.push_by_context(0.0, args)
    shaped = credit_by_round.push_by_context(7.0, args)
    assert all(push > 0 for push in naive.values())  # naive credit favours D in every context
    assert shaped["AB"] > 3 and shaped["BA"] < -3
    assert abs(shaped["open"] - naive["open"]) < 1e-6  # round 1 has no past: no shaping term


def test_start_policy_counts_tit_for_tat_exactly():
    """Tit-for-tat against random play: A on the first move and after the other's A, B after its B."""
    start_policy = load("start_policy")
    seen, cooperated = start_policy.context_counts("tft", games=16, rounds=6, system=None)
    assert sum(seen.values()) == 16 * 6 and seen[0] == 16
    assert [cooperated[s] / seen[s] for s in range(5)] == [1.0, 1.0, 0.0, 1.0, 0.0]
