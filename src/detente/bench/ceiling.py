"""The machine's ceiling and the useful work measured against it.

* ``matmul_gflops``: the best rate of a large square ``torch.matmul`` in the model's dtype (float32
  on CPU, bfloat16 on GPU), ``2 n^3`` floating-point operations per product.
* Useful work counts the model's linear layers only, on unique tokens: ``2 P`` per token forwarded,
  ``6 P`` per token trained (forward, and a backward twice its cost), ``P`` the parameters outside
  the embeddings (:func:`body_parameters`). Attention scores, the output head, LoRA's own matrices,
  padding and recomputation are not counted, so the fraction is a lower bound on the machine's use.
"""

from __future__ import annotations

from typing import Any

import torch

from detente.bench.measure import clock

FORWARD_FLOPS = 2
"""Useful floating-point operations per parameter and token of a forward."""
TRAIN_FLOPS = 6
"""Useful floating-point operations per parameter and token of a forward and its backward."""


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    """The best rate, in GFLOP/s, of ``repeats`` products of two random ``n x n`` matrices (one more
    first, untimed)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        began = clock(device)
        torch.matmul(a, b)
        best = min(best, clock(device) - began)
    return 2 * n**3 / best / 1e9


def body_parameters(model: Any) -> int:
    """P: the base model's parameters outside its input and output embeddings (tied or not), LoRA
    matrices excluded."""
    embeddings = {id(p) for module in (model.get_input_embeddings(), model.get_output_embeddings())
                  if module is not None for p in module.parameters()}
    return sum(p.numel() for name, p in model.named_parameters()
               if id(p) not in embeddings and "lora_" not in name)


def fraction(flops_per_s: float, gflops: float) -> float:
    """The share of the matmul ceiling that ``flops_per_s`` of useful work reaches."""
    return flops_per_s / (gflops * 1e9)
