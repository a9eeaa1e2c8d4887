"""A real ``detente train`` process SIGKILLed at any moment resumes to exactly the uninterrupted run.

Kills land during the rollout, during the update, inside ``save()``, inside atomic writes, halfway
through a metrics line, between the metrics append and the checkpoint, and after a random delay;
the run is resumed after each until it ends. Its metrics (timing aside), checkpoints, adapter and
buffer weights and final cross-play equal those of a run never killed, and no temporary file is
left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from detente.atomic import TMP_PREFIX
from detente.runs import read_metrics

DRIVER = Path(__file__).with_name("kill_driver.py")
KILLS = [("before-save", 2), ("metrics-torn", 1), ("adapter-write", 1), ("fsync", 3), ("update", 1),
         ("rollout", 2), ("random", 0), ("none", 0)]
"""(point, n) of each process in turn; the first starts the run, the others resume it."""


def settings(tiny_model_dir: Path) -> list[str]:
    values = ["agent.kind=llm", f"agent.model={tiny_model_dir}", "agent.lora_r=4", "agent.lora_alpha=8",
              "agent.max_message_tokens=4", "game.name=trust_split", "game.params={n_rounds: 2}",
              "credit.group_size=2", "train.iterations=5", "train.games_per_iteration=4", "train.lr=0.01",
              "train.checkpoint_every=2", "train.transcripts=2", "buffer.enabled=true", "buffer.every=2",
              "buffer.max_size=1", "eval_games=2", "eval_opponents=[greedy]"]
    return [arg for value in values for arg in ("--set", value)]


def run(point: str, n: int, args: list[str], rng: random.Random) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(DRIVER.parent)}
    process = subprocess.Popen([sys.executable, str(DRIVER), "none" if point == "random" else point, str(n),
                                *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if point == "random":
        time.sleep(rng.uniform(4.0, 9.0))
        process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    if process.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"{point} {n}: exit {process.returncode}\n{err[-2000:]}")
    return process.returncode


def metrics(folder: Path) -> list[dict]:
    return [line.without_perf() for line in read_metrics(folder)]


def weights(folder: Path) -> dict[str, dict]:
    """Every safetensors file under ``folder/checkpoints``, by relative path."""
    files = sorted((folder / "checkpoints").rglob("*.safetensors"))
    return {str(p.relative_to(folder)): load_file(p) for p in files}


def test_sigkill_at_any_moment_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_model_dir):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    rng = random.Random(0)
    assert run("none", 0, ["train", "cpu_ipd_adalign", *settings(tiny_model_dir), "--out", str(straight)],
               rng) == 0
    codes = []
    for i, (point, n) in enumerate(KILLS):
        args = ["train", "cpu_ipd_adalign", *settings(tiny_model_dir), "--out", str(killed)] if i == 0 else \
            ["train", "--resume", str(killed)]
        codes.append(run(point, n, args, rng))
    assert codes[-1] == 0 and codes.count(-signal.SIGKILL) >= 6, codes

    assert metrics(killed) == metrics(straight) and len(metrics(straight)) == 5
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys() and any("buffer" in k for k in a) and any("iter_4" in k for k in a)
    for name in a:
        assert a[name].keys() == b[name].keys()
        assert all(a[name][t].equal(b[name][t]) for t in a[name]), name
    latest = "checkpoints/latest.json"
    assert (killed / latest).read_text() == (straight / latest).read_text()
    matrix = (killed / "matrix.json").read_text().replace(str(killed), "RUN")
    assert matrix == (straight / "matrix.json").read_text().replace(str(straight), "RUN")
    assert sorted(p.name for p in (killed / "transcripts").iterdir()) == \
        sorted(p.name for p in (straight / "transcripts").iterdir())
    assert [p for p in killed.rglob(f"{TMP_PREFIX}*")] == []
