"""The CPU attention that broadcasts grouped key/value heads computes what transformers' sdpa does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from detente.policies.attention import NAME, use_gqa_attention  # noqa: E402
from tiny_model import tiny_lm, tiny_model  # noqa: E402


def _masked_inputs(B: int = 2, L: int = 12) -> dict[str, torch.Tensor]:
    """Ids with an explicit additive 4D mask: causal, and row 1 may not see its first 3 tokens."""
    torch.manual_seed(0)
    visible = torch.ones(L, L, dtype=torch.bool).tril().expand(B, L, L).clone()
    visible[1, 3:, :3] = False
    mask = torch.zeros(B, 1, L, L).masked_fill(~visible.unsqueeze(1), torch.finfo(torch.float32).min)
    return {"input_ids": torch.randint(0, 200, (B, L)), "attention_mask": mask,
            "position_ids": torch.arange(L).expand(B, L)}


def _logits_and_grads(model, inputs):
    model.zero_grad(set_to_none=True)
    logits = model(**inputs).logits
    logits.logsumexp(-1).mean().backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()]


def test_gqa_attention_gives_sdpa_logits_and_gradients_on_a_grouped_model():
    model = tiny_model(attn="sdpa")
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # grouped heads
    inputs = _masked_inputs()
    reference, reference_grads = _logits_and_grads(model, inputs)
    use_gqa_attention(model)
    assert model.config._attn_implementation == NAME
    logits, grads = _logits_and_grads(model, inputs)
    torch.testing.assert_close(logits, reference, rtol=1e-5, atol=1e-5)
    for grad, expected in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


def test_a_cpu_model_serves_with_the_gqa_attention_unless_eager_was_asked_for():
    assert tiny_lm().base.config._attn_implementation == NAME
    assert tiny_lm(attn="eager").base.config._attn_implementation == "eager"


@pytest.mark.parametrize("queries", [1, 3, 8])
def test_short_queries_take_the_grouped_matmuls_and_give_sdpa_numbers(queries):
    """Up to DECODE_QUERIES query tokens run as batched matmuls over the grouped heads: the same output
    as SDPA, with a mask that hides a different run of history slots from each chat."""
    from torch.nn.functional import scaled_dot_product_attention

    from detente.policies.attention import DECODE_QUERIES, gqa_sdpa_attention

    assert queries <= DECODE_QUERIES
    torch.manual_seed(1)
    B, H, KV, S, D = 2, 6, 2, 40, 8
    query, key, value = torch.randn(B, H, queries, D), torch.randn(B, KV, S, D), torch.randn(B, KV, S, D)
    hidden = torch.zeros(B, 1, queries, S, dtype=torch.bool)
    hidden[0, ..., 5:9] = True
    hidden[1, ..., 30:] = True
    mask = torch.zeros(B, 1, queries, S).masked_fill(hidden, torch.finfo(torch.float32).min)
    module = torch.nn.Module().eval()
    out, _ = gqa_sdpa_attention(module, query, key, value, mask, scaling=0.3)
    expected = scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=0.3, enable_gqa=True)
    torch.testing.assert_close(out, expected.transpose(1, 2), rtol=1e-5, atol=1e-6)
