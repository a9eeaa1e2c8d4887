"""History scaling of the rollout with and without each of its CPU speed-ups, side by side.

Usage::

    python benchmarks/history_variants.py                      # Trust-and-Split, 16-token messages
    python benchmarks/history_variants.py --game ipd --repeats 3
    python benchmarks/history_variants.py --variants gqa+growing+matmul --repeats 3   # as it ships

It plays the bench's history game (one 20-round self-play game of the embedded SmolLM2, seed 0,
:class:`detente.bench.rollout.HistoryTimer`) under four variants (or only the ``--variants``
named), alternating, ``--repeats`` times each, and prints the seconds of rounds 1, 5, 10 and 20
(the fastest repeat) and round 20 / round 1. All four compute the same numbers (``tests/test_attention.py``,
``tests/test_growing_cache.py``); each adds one speed-up to the one before:

- ``sdpa``: transformers' attention, which copies every grouped key/value head of the cached
  history once per query head on every forward, and a cache that concatenates the history with
  each forward's new tokens (transformers' ``DynamicCache``);
- ``gqa``: detente's attention with SDPA broadcasting the grouped heads on every forward, over
  the concatenating cache;
- ``gqa+growing``: that, over the cache that grows in place;
- ``gqa+growing+matmul``: as detente runs, with forwards of up to ``DECODE_QUERIES`` query
  tokens per chat as batched matmuls instead of SDPA.

Every variant compacts the per-chat caches as detente now does.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from unittest import mock

import torch
from transformers import DynamicCache

from detente.bench.rollout import HISTORY_ROUNDS, HistoryTimer, detente_policy, naive_policy, play_timed
from detente.policies import attention, llm_backend
from detente.policies.attention import use_gqa_attention
from detente.policies.llm_backend import LoRAModel

ROUNDS = (1, 5, 10, 20)
VARIANTS = ("sdpa", "gqa", "gqa+growing", "gqa+growing+matmul")


def concatenating_cache(layers: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
                        length: int = 0) -> DynamicCache:
    """transformers' DynamicCache over the filled part of the packed batch's buffers."""
    if not layers:
        return DynamicCache()
    return DynamicCache(ddp_cache_data=[(k[:, :, :length], v[:, :, :length]) for k, v in layers])


@contextmanager
def variant(lm: LoRAModel, name: str) -> Iterator[None]:
    lm.base.set_attn_implementation("sdpa")
    if name != "sdpa":
        use_gqa_attention(lm.base)
    with contextlib.ExitStack() as patches:
        if "growing" not in name:
            patches.enter_context(mock.patch.object(llm_backend, "growing_cache", concatenating_cache))
        if "matmul" not in name:
            patches.enter_context(mock.patch.object(attention, "DECODE_QUERIES", 0))
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="trust_split", help="ipd or trust_split (default)")
    parser.add_argument("--repeats", type=int, default=2, help="plays per variant (default 2)")
    parser.add_argument("--message-tokens", type=int, default=16,
                        help="message length (default 16, as --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS,
                        help="the variants to play (default all four)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = LoRAModel.load("smollm2")
    best: dict[str, dict[int, float]] = {}
    for _ in range(args.repeats):
        for name in args.variants:
            with variant(lm, name):
                tokens = args.message_tokens
                timer = HistoryTimer(detente_policy(lm, tokens), naive_policy(lm, tokens), set(), lm.device)
                play_timed(timer, args.game, 1, HISTORY_ROUNDS, 0, lm.device)
            seconds = best.setdefault(name, {})
            for r in ROUNDS:
                seconds[r] = min(seconds.get(r, float("inf")), timer.seconds[r])
    print(f"{args.game}, {HISTORY_ROUNDS}-round game, seconds per round (fastest of {args.repeats}), "
          f"{torch.get_num_threads()} threads")
    print(f"{'variant':<20}" + "".join(f"{'round ' + str(r):>10}" for r in ROUNDS) + f"{'r20 / r1':>10}")
    for name, seconds in best.items():
        cells = "".join(f"{seconds[r]:>10.2f}" for r in ROUNDS)
        print(f"{name:<20}{cells}{seconds[20] / seconds[1]:>10.2f}")


if __name__ == "__main__":
    main()
