"""Scaled dot-product attention that broadcasts grouped key/value heads instead of copying them.

Models with grouped-query attention (SmolLM2: 9 query heads, 3 key/value heads) share each key/value
head among several query heads. transformers' ``sdpa`` attention, given an explicit mask (which
detente's packed forward always passes), first copies every key/value head once per query head of
its group (``repeat_kv``): a copy of the whole cached history, per layer, on every forward step.
With a 4500-token history that copy costs four times the attention itself on a CPU.

``torch.nn.functional.scaled_dot_product_attention(..., enable_gqa=True)`` computes the same
numbers from the shared heads directly. transformers uses it only without a mask, because CUDA
kernels would fall back to the slow math path; on CPU the masked GQA kernel is fast, so detente
registers this function as the attention implementation :data:`NAME` for models on the CPU.

For a forward of a few query tokens per chat (:data:`DECODE_QUERIES` or fewer: a decode step, a
short choice), SDPA's CPU kernel is slower than plain batched matmuls. There the query heads of a
group are stacked as rows against their one key/value head, ``(B, KV, G*Q, D) @ (B, KV, D, S)``,
which reads each cached key and value once for all of them: 0.56x SDPA's time at a 4500-token
history, batch 2, one query token, on 2 cores (docs/PERFORMANCE.md).

The function follows transformers' attention-function interface (``AttentionInterface``): it gets
``query (B, H, Q, D)``, ``key`` / ``value (B, KV, S, D)`` and an additive mask ``(B, 1, Q, S)`` or
None, and returns the output as ``(B, Q, H, D)`` and no attention weights.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

NAME = "detente_sdpa_gqa"
"""The attention implementation name this module registers with transformers."""

DECODE_QUERIES = 8
"""Up to this many query tokens per chat (with a mask, or one token), attention runs as batched matmuls."""


def grouped_matmul_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``softmax(Q K^T * scale + mask) V`` for ``query (B, H, Q, D)``, ``key``/``value (B, KV, S, D)``
    and an additive ``mask (B, 1, Q, S)``; returns ``(B, H, Q, D)``. The G = H / KV query heads of a
    group are the rows of one matmul against their key/value head."""
    B, H, Q, D = query.shape
    KV, S = key.shape[1], key.shape[2]
    G = H // KV
    scores = torch.matmul(query.reshape(B, KV, G * Q, D), key.transpose(-1, -2)) * scale  # (B, KV, G*Q, S)
    if mask is not None:
        scores = (scores.view(B, KV, G, Q, S) + mask[:, None]).view(B, KV, G * Q, S)
    weights = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    return torch.matmul(weights, value).view(B, H, Q, D)


def gqa_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``softmax(Q K^T * scaling + mask) V`` with key/value head ``j`` serving query heads
    ``j*G .. (j+1)*G - 1``, G = H / KV (the layout ``repeat_kv`` would have built)."""
    mask = None if attention_mask is None else attention_mask[:, :, :, : key.shape[-2]]
    Q = query.shape[2]
    dropout = dropout if module.training else 0.0
    if Q <= DECODE_QUERIES and (mask is not None or Q == 1) and dropout == 0.0:
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        out = grouped_matmul_attention(query, key, value, mask, scale)
        return out.transpose(1, 2).contiguous(), None
    out = F.scaled_dot_product_attention(
        query, key, value,
        attn_mask=mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=mask is None and Q > 1,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


def use_gqa_attention(model: Any) -> None:
    """Switch ``model`` to :func:`gqa_sdpa_attention` if it runs on the CPU; leave it otherwise."""
    if next(model.parameters()).device.type != "cpu":
        return
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, gqa_sdpa_attention)
    model.set_attn_implementation(NAME)
