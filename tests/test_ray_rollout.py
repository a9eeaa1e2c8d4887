"""Training rollouts on Ray workers: a local runtime of 2 CPUs, the tiny model saved to disk.

The same seed gives the same metrics, transcripts and adapter on 1 worker and on 2; a run stopped
after an iteration resumes on another worker count to the same run; a worker SIGKILLed in the middle
of an iteration is replaced and its chunk replayed, every game present exactly once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from detente.config import load_config
from detente.runs import read_metrics, transcript_files
from detente.train.llm import start_llm_run, train_llm
from detente.train.seating import plan

pytest.importorskip("ray")


def settings(model_dir: Path, *extra: str):
    """Trust-and-Split self-play with the buffer (iteration 1 meets snapshot past-1), 8 games in 4
    chunks of one seed group each, every game kept as a transcript."""
    return load_config(None, [
        "agent.kind=llm", f"agent.model={model_dir}", "agent.lora_r=4", "agent.lora_alpha=8",
        "agent.max_message_tokens=4", "game.name=trust_split", "game.params={n_rounds: 2}",
        "credit.group_size=2", "train.iterations=2", "train.games_per_iteration=8", "train.lr=0.01",
        "train.transcripts=8", "buffer.enabled=true", "buffer.every=1", "buffer.prob=0.5",
        "rollout.backend=ray", "rollout.chunk_games=2", *extra])


def metrics(folder: Path) -> list[dict]:
    return [line.without_perf() for line in read_metrics(folder)]


def weights(folder: Path) -> dict[str, dict]:
    """Every adapter file of the run (checkpoints and buffer snapshots), by relative path."""
    return {str(p.relative_to(folder)): load_file(p) for p in sorted(folder.rglob("*.safetensors"))}


def transcripts(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in transcript_files(folder)}


def assert_same_run(a: Path, b: Path) -> None:
    assert metrics(a) == metrics(b) and len(metrics(a)) == 2
    assert transcripts(a) == transcripts(b)
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and any("buffer" in k for k in wa)
    for name in wa:
        assert all(wa[name][t].equal(wb[name][t]) for t in wa[name]), name


@pytest.fixture(scope="module")
def two_workers(ray_runtime, tiny_model_dir, tmp_path_factory) -> Path:
    """A 2-iteration run on 2 workers: the reference the other runs must equal."""
    out = tmp_path_factory.mktemp("two-workers")
    train_llm(settings(tiny_model_dir, "rollout.workers=2"), out)
    return out


def test_one_and_two_workers_give_the_same_metrics_transcripts_and_adapter(two_workers, tiny_model_dir,
                                                                            tmp_path):
    train_llm(settings(tiny_model_dir, "rollout.workers=1"), tmp_path)
    assert_same_run(tmp_path, two_workers)
    assert [line.values["perf/workers"] for line in read_metrics(tmp_path)] == [1, 1]
    assert [line.values["perf/workers"] for line in read_metrics(two_workers)] == [2, 2]
    games = (two_workers / "transcripts" / "iter_1.jsonl").read_text()
    assert '"past-1"' in games and games.count('["learner","learner"]') > 0  # snapshot and live co-player


def test_a_stopped_run_resumes_on_another_worker_count_to_the_same_run(two_workers, tiny_model_dir,
                                                                       tmp_path):
    class Stopped(Exception):
        pass

    def stop(line):
        raise Stopped

    with pytest.raises(Stopped):
        train_llm(settings(tiny_model_dir, "rollout.workers=2"), tmp_path, stop)
    train_llm(settings(tiny_model_dir, "rollout.workers=1"), tmp_path, resume=True)
    assert_same_run(tmp_path, two_workers)


def test_a_worker_killed_mid_iteration_is_replaced_and_every_game_is_played_once(
        ray_runtime, tiny_model_dir, tmp_path, caplog):
    """A scripted co-player; the second rollout of the same plan loses a worker after its first chunk
    (both workers are busy then: the next chunk was just handed out) and gives what the first gave."""
    cfg = settings(tiny_model_dir, "coplayer=greedy", "buffer.enabled=false", "rollout.workers=2")
    kill = {"armed": False, "pids": []}

    def on_chunk(done, total, status):
        if kill["armed"]:
            kill["armed"] = False
            os.kill(kill["pids"][1], signal.SIGKILL)

    trainer = start_llm_run(cfg, tmp_path, on_progress=on_chunk)
    seatings = plan(cfg, 0, trainer.learner, trainer.fixed, [])
    streams = [f"{cfg.seed}:0:{slot}" for slot in range(len(seatings))]
    try:
        clean = trainer.rollout.run(seatings, streams, trainer.game_factory, 8, 0)
        kill["pids"], kill["armed"] = trainer.rollout.start().pids(), True
        with caplog.at_level(logging.WARNING, logger="detente.rollout.ray_pool"):
            killed = trainer.rollout.run(seatings, streams, trainer.game_factory, 8, 0)
        new_pids = trainer.rollout.start().pids()
    finally:
        trainer.rollout.close()

    assert killed.perf["perf/worker_restarts"] == 1 and clean.perf["perf/worker_restarts"] == 0
    assert new_pids[0] == kill["pids"][0] and new_pids[1] != kill["pids"][1]
    assert "rollout worker 1 died while playing chunk" in caplog.text and len(caplog.records) == 1
    # every game exactly once, in plan order, as the undisturbed rollout played it
    assert [(t.slot, t.seed) for t in killed.transcripts] == [(i, s.seed) for i, s in enumerate(seatings)]
    assert killed.transcripts == clean.transcripts
    assert all("greedy" in t.players for t in killed.transcripts)
    assert [e.game.round_rewards for e in killed.episodes] == [e.game.round_rewards for e in clean.episodes]
    assert killed.learner_chats.keys() == clean.learner_chats.keys() and len(clean.learner_chats) == 8
    for key, chat in clean.learner_chats.items():
        again = killed.learner_chats[key]
        assert again.token_ids == chat.token_ids and again.kv is None
        assert [(r.slot, r.step_logprobs) for r in again] == [(r.slot, r.step_logprobs) for r in chat]
        assert all(r.slot == key[0] for r in chat)
    untimed = [{k: v for k, v in r.stats.items() if k != "act_ms"} for r in (killed, clean)]
    assert untimed[0] == untimed[1] and untimed[0]["decisions"] > 0


def test_detente_train_joins_a_running_cluster_with_ray_address(ray_runtime, tiny_model_dir, tmp_path):
    """The command line in its own process: ``--ray-address`` joins this session's Ray runtime (as it
    would a cluster's head), trains on its workers with one progress bar, then cross-plays locally."""
    address = ray_runtime.get_runtime_context().gcs_address
    sets = ["agent.kind=llm", f"agent.model={tiny_model_dir}", "agent.lora_r=4", "agent.lora_alpha=8",
            "game.params={n_rounds: 2}", "train.iterations=1", "train.games_per_iteration=4",
            "credit.group_size=2", "rollout.backend=ray", "rollout.workers=2", "rollout.chunk_games=2",
            "eval_games=2", "eval_opponents=[alld]"]
    args = [arg for value in sets for arg in ("--set", value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    command = "import sys; from detente.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", command, "train", "cpu_ipd_adalign", *args,
                           "--out", str(tmp_path), "--ray-address", address],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training" in done.stdout and "1/1" in done.stdout
    [line] = read_metrics(tmp_path)
    assert line.values["perf/workers"] == 2 and line.values["perf/chunks"] == 2
    assert (tmp_path / "matrix.json").is_file()


def test_a_runtime_started_here_runs_its_workers_at_the_drivers_priority():
    """``connect()`` with no address starts a runtime whose workers are not niced (Ray's default is 15,
    at which a busy neighbour process starves the rollout): a pool worker reports the driver's niceness."""
    script = ("import os, ray\n"
              "from detente.config import WorkerResources\n"
              "from detente.rollout.ray_pool import Worker, WorkerPool\n"
              "class Nice(Worker):\n"
              "    def nice(self): return os.nice(0)\n"
              "pool = WorkerPool(Nice, (), 1, WorkerResources(num_cpus=1), 'probe')\n"
              "print('nice', ray.get(pool.actors[0].nice.remote()), os.nice(0))\n"
              "ray.shutdown()\n")
    unset = ("RAY_ADDRESS", "RAY_worker_niceness")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("nice ")]
    _, worker, driver = line.split()
    assert int(worker) == int(driver)
