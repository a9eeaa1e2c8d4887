"""What one micro-batch of the update holds at its peak: ``M`` rows of ``Q`` trained tokens each,
after a ``P``-token prefix they all share, on the embedded SmolLM2 with a LoRA adapter.

Usage::

    python benchmarks/prefix_memory.py                  # the grid below, one process per point
    python benchmarks/prefix_memory.py --point 16 16 512

The prefix is forwarded once (as the update's batch prefix is) and its keys/values are
expanded to the ``M`` rows, whose own tokens attend to them through the trainer's read-only
cache (:class:`detente.train.terms.SharedPrefixKV`). The figure is the peak RSS increase of
the rows' forward and backward (:class:`detente.bench.measure.PeakMemory`). Each point runs in a
fresh process, so one point's freed heap cannot hide the next one's.

Two slopes come out of the grid: per trained token (``Q`` up at fixed ``M``, ``P``) and per
prefix token a row reads (``P`` up at fixed ``M``, ``Q``): every row keeps its own copy of the
keys and values it attends to, ``2 * kv_heads * head_dim * layers`` floats per token (45 KiB on
SmolLM2), however much of them it shares.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import torch

GRID = [(8, 16, 32), (8, 16, 512), (8, 16, 1024), (8, 64, 512), (1, 16, 512), (16, 16, 512)]
"""(M rows, Q own tokens per row, P shared prefix tokens)."""


def measure(rows: int, own: int, shared: int) -> float:
    """Peak MiB of the forward and backward of ``rows`` x ``own`` tokens over a ``shared``-token prefix."""
    from detente.bench.measure import PeakMemory
    from detente.models import EMBEDDED
    from detente.policies.llm_backend import LoRAModel, decoder_forward
    from detente.train.seating import LEARNER
    from detente.train.terms import CaptureKV, SharedPrefixKV

    lm = LoRAModel.load(EMBEDDED, device=torch.device("cpu"), lora_r=8, lora_alpha=16)
    lm.add_adapter(LEARNER)
    lm.trainable_parameters(LEARNER)
    ids = torch.randint(100, 40000, (rows, shared + own), generator=torch.Generator().manual_seed(0))
    ids[:, :shared] = ids[:1, :shared]
    causal = torch.ones(own, shared + own, dtype=torch.bool).tril(shared)  # (Q, P + Q)
    mask = torch.zeros(rows, 1, own, shared + own).masked_fill_(~causal, torch.finfo(torch.float32).min)
    positions = torch.arange(shared, shared + own).expand(rows, -1)
    with lm.active(LEARNER) as model:
        capture = CaptureKV()
        with torch.no_grad():
            decoder_forward(model, input_ids=ids[:1, :shared], past_key_values=capture, use_cache=False)
        prefix = [(k.requires_grad_(), v.requires_grad_()) for k, v in capture.layers]
        with PeakMemory(torch.device("cpu")) as peak:
            expanded = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in prefix]
            cache = SharedPrefixKV(expanded)
            hidden, _, _ = decoder_forward(model, input_ids=ids[:, shared:], attention_mask=mask,
                                           position_ids=positions, past_key_values=cache, use_cache=False)
            hidden.square().mean().backward()
    return peak.mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", type=int, nargs=3, metavar=("M", "Q", "P"),
                        help="measure one point in this process (default: every point of the grid, each "
                             "in its own process)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.point:
        print(f"{measure(*args.point):.1f}")
        return
    print(f"{'M rows':>6} {'Q own':>6} {'P prefix':>8} {'peak MiB':>9}")
    for point in GRID:
        out = subprocess.run([sys.executable, __file__, "--point", *map(str, point)], check=True,
                             capture_output=True, text=True).stdout.split()[-1]
        print(f"{point[0]:>6} {point[1]:>6} {point[2]:>8} {out:>9}")


if __name__ == "__main__":
    main()
