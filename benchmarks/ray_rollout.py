"""Rollout throughput on Ray workers: decisions per second with 1 and 2 workers, and in-process.

Usage::

    python benchmarks/ray_rollout.py               # tiny random Llama (saved to a temporary folder)
    python benchmarks/ray_rollout.py smollm2       # the embedded SmolLM2-135M-Instruct
    python benchmarks/ray_rollout.py smollm2 --workers 1,2,4 --games 32 --chunk-games 8

It plays one training iteration's rollout of IPD self-play (the main job's game:
6 rounds, seed groups off) with the learner's fresh adapter, ``--repeats`` times
after one warm-up rollout that starts the workers and loads their models, and
prints the games' decisions per second of wall time. The in-process rows play
the same games with :class:`~detente.train.rollout.LocalRollout` on 1 and 2 torch
threads, for reference. Workers reserve one CPU each and run torch on one
thread; the local Ray runtime gets every CPU of this machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def model_folder(name: str, folder: Path) -> str:
    """``name`` itself, or for ``tiny`` the tests' tiny random model saved under ``folder``."""
    if name != "tiny":
        return name
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_model import tiny_model, tiny_tokenizer

    tiny_model().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def rollout_rate(trainer, repeats: int) -> tuple[float, int, float]:
    """(seconds of the first rollout, decisions per rollout, decisions per second of the others)."""
    from detente.train.seating import plan

    cfg = trainer.config
    seatings = plan(cfg, 0, trainer.learner, trainer.fixed, [])
    streams = [f"{cfg.seed}:0:{slot}" for slot in range(len(seatings))]
    began = time.perf_counter()
    first = trainer.rollout.run(seatings, streams, trainer.game_factory, 0, 0)
    warm = time.perf_counter() - began
    decisions = sum(len(episode.decisions) for episode in first.episodes)
    began = time.perf_counter()
    for _ in range(repeats):
        trainer.rollout.run(seatings, streams, trainer.game_factory, 0, 0)
    return warm, decisions, decisions * repeats / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="tiny", help="'tiny' (default), 'smollm2', or a folder")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    parser.add_argument("--games", type=int, default=16, help="games per rollout (default 16)")
    parser.add_argument("--chunk-games", type=int, default=4, help="games per chunk (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rollouts per setting (default 2)")
    parser.add_argument("--local-threads", default="1,2", help="torch threads of the in-process rows "
                        "(default 1,2; empty: none)")
    args = parser.parse_args()

    import torch

    from detente.config import load_config
    from detente.rollout.ray_pool import connect
    from detente.train.llm import LLMTrainer

    with tempfile.TemporaryDirectory() as tmp:
        model = model_folder(args.model, Path(tmp) / "model")
        base = ["agent.kind=llm", f"agent.model={model}", "agent.lora_r=8", "agent.lora_alpha=16",
                "game.params={n_rounds: 6}", "credit.group_baseline=false",
                f"train.games_per_iteration={args.games}"]
        rows = []
        for threads in [int(t) for t in args.local_threads.split(",") if t]:
            torch.set_num_threads(threads)
            trainer = LLMTrainer(load_config(None, base), Path(tmp) / f"local{threads}")
            warm, decisions, rate = rollout_rate(trainer, args.repeats)
            rows.append(("in-process", "-", threads, decisions, warm, rate))
        torch.set_num_threads(1)
        connect()
        for workers in [int(w) for w in args.workers.split(",")]:
            on_ray = ["rollout.backend=ray", f"rollout.workers={workers}",
                      f"rollout.chunk_games={args.chunk_games}"]
            trainer = LLMTrainer(load_config(None, [*base, *on_ray]), Path(tmp) / f"ray{workers}")
            try:
                warm, decisions, rate = rollout_rate(trainer, args.repeats)
            finally:
                trainer.rollout.close()
            rows.append(("ray", str(workers), 1, decisions, warm, rate))

    print(f"model {args.model}: {args.games} IPD games of 6 rounds per rollout, chunks of "
          f"{args.chunk_games}, {args.repeats} timed rollouts each")
    print(f"{'backend':<11}{'workers':>8}{'threads':>8}{'decisions':>10}{'first s':>9}{'decisions/s':>13}")
    for backend, workers, threads, decisions, warm, rate in rows:
        print(f"{backend:<11}{workers:>8}{threads:>8}{decisions:>10}{warm:>9.1f}{rate:>13.1f}")


if __name__ == "__main__":
    main()
