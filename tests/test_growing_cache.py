"""The key/value cache that grows in place: same numbers as transformers' DynamicCache, and decode steps
write into spare room instead of copying the history (counted, not timed)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import DynamicCache  # noqa: E402

from detente.policies.growing_cache import SPARE_MIN, GrowingLayer, growing_cache  # noqa: E402
from detente.policies.llm_backend import PackedBatch, Query  # noqa: E402
from tiny_model import tiny_model  # noqa: E402


def _decode(model, cache, prompt: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Forward ``prompt``, then ``steps`` greedy tokens one at a time; the logits of every forward."""
    out = model(input_ids=prompt, past_key_values=cache, use_cache=True)
    logits = [out.logits[:, -1]]
    for _ in range(steps):
        token = logits[-1].argmax(-1, keepdim=True)
        out = model(input_ids=token, past_key_values=cache, use_cache=True)
        logits.append(out.logits[:, -1])
    return logits


def test_decoding_over_a_growing_cache_gives_dynamic_cache_logits():
    model = tiny_model()
    prompt = torch.randint(0, 200, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = _decode(model, DynamicCache(), prompt, SPARE_MIN + 20)  # past the first spare room
        got = _decode(model, growing_cache(), prompt, SPARE_MIN + 20)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_decode_step_writes_in_place_and_growth_is_rare():
    """200 one-token updates after a 300-token history: the buffer (300 + 128 spare slots) is replaced
    once, when its spare room runs out, not on every step as concatenation would."""
    B, H, D = 2, 3, 4
    history = torch.randn(B, H, 300, D)
    buffer = GrowingLayer.buffer(history.shape, 300, history)
    buffer[:, :, :300] = history
    layer = GrowingLayer(buffer, buffer.clone(), 300)
    new_tokens, buffers = [], {layer._keys.data_ptr()}
    for _ in range(200):
        token = torch.randn(B, H, 1, D)
        keys, _ = layer.update(token, token)
        new_tokens.append(token)
        buffers.add(layer._keys.data_ptr())
    assert keys.shape == (B, H, 500, D) and layer.get_seq_length() == 500
    torch.testing.assert_close(keys, torch.cat([history, *new_tokens], dim=2))
    assert len(buffers) == 2


def test_packed_batch_caches_grow_in_place_across_steps():
    """A packed batch over two chats of different lengths keeps one buffer per layer while it decodes; the
    per-chat caches it hands back, once, equal a fresh forward of each chat."""
    model = tiny_model()
    chats = [list(range(5, 30)), list(range(40, 52))]
    with torch.no_grad():
        first = PackedBatch(model, [None, None])
        first.step([Query.chain(chat) for chat in chats])
        batch = PackedBatch(model, first.caches())
        pointers = {layer._keys.data_ptr() for layer in batch.cache.layers}
        for token in (7, 8, 9):
            batch.step([Query.chain([token]), Query.chain([token])])
        assert {layer._keys.data_ptr() for layer in batch.cache.layers} == pointers
        kvs = batch.caches()
        with pytest.raises(RuntimeError, match="already taken"):  # the batch released its cache
            batch.step([Query.chain([1]), Query.chain([1])])
        for chat, kv in zip(chats, kvs, strict=True):
            full = model(input_ids=torch.tensor([[*chat, 7, 8, 9]]), use_cache=True).past_key_values
            for (k, v), layer in zip(kv.layers, full.layers, strict=True):
                torch.testing.assert_close(k, layer.keys[0], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(v, layer.values[0], rtol=1e-5, atol=1e-5)
