"""Slow tests on the embedded SmolLM2-135M-Instruct (run with `make test-slow`; minutes each on 2 cores).

Results and timings are recorded in README.md ("LLM results on CPU").
"""

import subprocess
import sys
import time

import pytest

from detente.config import load_config
from detente.runs import read_jsonl
from detente.train.llm import train_llm

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def all_threads():
    """Undo the suite's one-thread setting: a real model wants both cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_naive_learner_learns_to_defect_against_always_cooperate(tmp_path):
    """SPEC 4: plain RL turns the agent exploitative.

    Budget: the preset's 5 iterations of 8 games, about 10 minutes on 2 cores.
    """
    config = load_config(_preset("cpu_ipd_naive_vs_allc"))
    train_llm(config, tmp_path)
    metrics = read_jsonl(tmp_path / "metrics.jsonl")
    first, last = 1 - metrics[0]["cooperation_rate"], 1 - metrics[-1]["cooperation_rate"]
    print(f"defection rate: {first:.2f} at iteration 0 -> {last:.2f} at iteration {len(metrics) - 1}")
    assert last >= 0.8
    assert last > first


def test_default_train_command_finishes_within_20_minutes(tmp_path):
    """The README main job, as a user runs it."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "detente.cli", "train", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=20 * 60)
    minutes = (time.monotonic() - began) / 60
    print(done.stdout[-3000:], f"\nwall time {minutes:.1f} min")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reward / round" in done.stdout and "itself" in done.stdout  # the summary table
    assert (tmp_path / "run" / "matrix.json").is_file()


def _preset(name):
    from detente.config import preset_path

    return preset_path(name)
