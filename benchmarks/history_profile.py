"""Where the time of an early and a late round goes: torch's profiler over the history game.

Usage::

    python benchmarks/history_profile.py                        # Trust-and-Split, rounds 1 and 20
    python benchmarks/history_profile.py --rounds 1 10 20 --top 15

It plays the bench's history game as detente ships (one 20-round self-play game of the embedded
SmolLM2, seed 0, 16-token messages, :class:`detente.bench.rollout.HistoryTimer`), runs every ``act``
call of the ``--rounds`` named under :mod:`torch.profiler`, and prints per round its wall seconds,
the tokens forwarded and generated, and the ops with the most self CPU time (the ``--top`` of the
last round named, the same ops for every round), each op's seconds side by side. The profiler
slows every op a little, so compare the rounds with each other, not with ``history_variants.py``.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from detente.bench.rollout import HISTORY_ROUNDS, HistoryTimer, detente_policy, naive_policy, play_timed
from detente.policies.base import Decision
from detente.policies.llm_backend import LoRAModel

COUNTED = ("forward_tokens", "generated_tokens")


class ProfiledTimer(HistoryTimer):
    """:class:`HistoryTimer` whose ``act`` calls of the ``profiled`` rounds run under the profiler:
    ``op_seconds[r][op]`` sums each op's self CPU seconds over the round, ``counts[r]`` the policy's
    token counters."""

    def __init__(self, lm: LoRAModel, message_tokens: int, profiled: set[int]) -> None:
        super().__init__(detente_policy(lm, message_tokens), naive_policy(lm, message_tokens), set(),
                         lm.device)
        self.profiled = profiled
        self.op_seconds: defaultdict[int, Counter[str]] = defaultdict(Counter)
        self.counts: defaultdict[int, Counter[str]] = defaultdict(Counter)

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        r = decisions[0].game.round + 1
        if r not in self.profiled:
            return super().act(decisions)
        before = Counter({k: self.policy.stats[k] for k in COUNTED})
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            replies = super().act(decisions)
        for event in prof.key_averages():
            self.op_seconds[r][event.key] += event.self_cpu_time_total / 1e6
        self.counts[r] += Counter({k: self.policy.stats[k] - before[k] for k in COUNTED})
        return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="trust_split", help="ipd or trust_split (default)")
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 20],
                        help=f"1-based rounds to profile, up to {HISTORY_ROUNDS} (default 1 20)")
    parser.add_argument("--top", type=int, default=10, help="ops to list (default 10)")
    parser.add_argument("--message-tokens", type=int, default=16, help="message length (default 16)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args()
    if not all(1 <= r <= HISTORY_ROUNDS for r in args.rounds):
        parser.error(f"--rounds must lie in 1..{HISTORY_ROUNDS}")
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = LoRAModel.load("smollm2")
    rounds = sorted(set(args.rounds))
    timer = ProfiledTimer(lm, args.message_tokens, set(rounds))
    play_timed(timer, args.game, 1, HISTORY_ROUNDS, 0, lm.device)

    threads = torch.get_num_threads()
    print(f"{args.game}, one {HISTORY_ROUNDS}-round game under the profiler, torch threads: {threads}")

    def row(label: str, cells: Sequence[str]) -> None:
        print(f"{label[:51]:<52}" + "".join(f"{c:>12}" for c in cells))

    row("", [f"round {r}" for r in rounds])
    row("wall s (profiled)", [f"{timer.seconds[r]:.2f}" for r in rounds])
    for key in COUNTED:
        row(key, [str(timer.counts[r][key]) for r in rounds])
    row("self CPU s, all ops", [f"{sum(timer.op_seconds[r].values()):.2f}" for r in rounds])
    for op, _ in timer.op_seconds[rounds[-1]].most_common(args.top):
        row(op, [f"{timer.op_seconds[r][op]:.2f}" for r in rounds])


if __name__ == "__main__":
    main()
