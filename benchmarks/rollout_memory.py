"""Peak resident memory of one rollout: 8 self-play IPD games (16 chats) of the embedded SmolLM2.

Usage::

    python benchmarks/rollout_memory.py                 # 8 games of 6 rounds
    python benchmarks/rollout_memory.py --games 16 --rounds 10

It loads the model with the main job's LoRA adapter, returns freed heap memory to the system
(``malloc_trim``), then samples the process's RSS while the games are played (the bench's
:class:`detente.bench.measure.PeakMemory`), and prints
the RSS before, the peak during the rollout, and the RSS after it once freed memory is returned
again. The difference between the peak and the last figure is what the rollout held at its peak
(live tensors and heap that glibc had not yet returned).
"""

from __future__ import annotations

import argparse
import ctypes
import gc

import torch

from detente.bench.measure import MIB, PeakMemory, rss_bytes
from detente.games import make_game
from detente.policies.llm import LLMPolicy
from detente.policies.llm_backend import LoRAModel
from detente.rollout.play import play


def trimmed_rss() -> int:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    lm = LoRAModel.load("smollm2", lora_r=8, lora_alpha=16)
    lm.add_adapter("learner")
    before = trimmed_rss()
    policy = LLMPolicy(lm, "learner")
    with PeakMemory(torch.device("cpu")) as rollout:
        play([make_game("ipd", n_rounds=args.rounds) for _ in range(args.games)],
             [(policy, policy)] * args.games, range(args.games))
    policy.end()
    after = trimmed_rss()
    print(f"{args.games} IPD games of {args.rounds} rounds: RSS before {before / MIB:.0f} MiB, "
          f"peak during the rollout {before / MIB + rollout.mib:.0f} MiB, "
          f"after (freed memory returned) {after / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
