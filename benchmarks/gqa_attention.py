"""History scaling under transformers' ``sdpa`` attention and detente's CPU variant, side by side.

Usage::

    python benchmarks/gqa_attention.py                      # Trust-and-Split, 16-token messages
    python benchmarks/gqa_attention.py --game ipd --repeats 3

It plays the bench's history game (one 20-round self-play game of the embedded SmolLM2, seed 0,
:class:`detente.bench.rollout.HistoryTimer`) with the model switched between the two attention
implementations, alternating, ``--repeats`` times each, and prints the seconds of rounds 1, 5, 10
and 20 (the fastest repeat) and round 20 / round 1. Both implementations compute the same numbers
(``tests/test_attention.py``); ``sdpa`` copies every grouped key/value head of the cached history
once per query head on every forward step, ``detente_sdpa_gqa`` lets SDPA broadcast them.
"""

from __future__ import annotations

import argparse

import torch

from detente.bench.rollout import HISTORY_ROUNDS, HistoryTimer, detente_policy, naive_policy, play_timed
from detente.policies.attention import NAME, use_gqa_attention
from detente.policies.llm_backend import LoRAModel

ROUNDS = (1, 5, 10, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="trust_split", help="ipd or trust_split (default)")
    parser.add_argument("--repeats", type=int, default=2, help="plays per implementation (default 2)")
    parser.add_argument("--message-tokens", type=int, default=16,
                        help="message length (default 16, as --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = LoRAModel.load("smollm2")
    best: dict[str, dict[int, float]] = {}
    for _ in range(args.repeats):
        for impl in ("sdpa", NAME):
            lm.base.set_attn_implementation("sdpa")
            if impl == NAME:
                use_gqa_attention(lm.base)
            tokens = args.message_tokens
            timer = HistoryTimer(detente_policy(lm, tokens), naive_policy(lm, tokens), set(), lm.device)
            play_timed(timer, args.game, 1, HISTORY_ROUNDS, 0, lm.device)
            seconds = best.setdefault(impl, {})
            for r in ROUNDS:
                seconds[r] = min(seconds.get(r, float("inf")), timer.seconds[r])
    print(f"{args.game}, {HISTORY_ROUNDS}-round game, seconds per round (fastest of {args.repeats}), "
          f"{torch.get_num_threads()} threads")
    print(f"{'attention':<18}" + "".join(f"{'round ' + str(r):>10}" for r in ROUNDS) + f"{'r20 / r1':>10}")
    for impl, seconds in best.items():
        cells = "".join(f"{seconds[r]:>10.2f}" for r in ROUNDS)
        print(f"{impl:<18}{cells}{seconds[20] / seconds[1]:>10.2f}")


if __name__ == "__main__":
    main()
