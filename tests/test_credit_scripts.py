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
