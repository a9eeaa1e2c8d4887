"""A key/value cache that grows in place: each forward writes its new keys/values into spare room.

transformers' ``DynamicLayer`` concatenates the whole cached history with the new tokens on every
forward, so a decode step over an S-token history copies S tokens per layer: decoding n tokens
costs O(n*S) copying. :class:`GrowingLayer` keeps each layer's keys and values in a buffer with
room to spare, ``(B, H, capacity, D)``, writes a forward's new tokens at the current length and
hands attention a view of the filled part. When the room runs out the buffer grows by an eighth
of its length (one copy), so the copying per token stays constant on average.

The views are not contiguous (their stride over the sequence skips the spare room); SDPA reads
them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

SPARE_MIN = 128
"""Tokens of spare room at least, when a buffer is made or grown; beyond that, an eighth of its length
(a packed batch adds one message or a few candidates, far fewer tokens than a long history holds)."""


class GrowingLayer(DynamicLayer):
    """One layer's keys and values in a buffer with spare room; ``keys``/``values`` view the filled part."""

    def __init__(self, keys: torch.Tensor | None = None, values: torch.Tensor | None = None,
                 length: int = 0) -> None:
        """``keys``/``values``: buffers ``(B, H, capacity, D)`` whose first ``length`` slots are filled."""
        super().__init__()
        self._keys, self._values, self._length = keys, values, length
        if keys is not None and values is not None:
            self.dtype, self.device = keys.dtype, keys.device
            self.is_initialized = True
            self._expose()

    @staticmethod
    def buffer(shape: Sequence[int], length: int, like: torch.Tensor) -> torch.Tensor:
        """A zeroed ``(B, H, capacity, D)`` buffer for ``length`` tokens plus spare room."""
        B, H, _, D = shape
        capacity = length + max(SPARE_MIN, length // 8)
        return torch.zeros(B, H, capacity, D, dtype=like.dtype, device=like.device)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self._keys = self.buffer(key_states.shape, 0, key_states)
        self._values = self.buffer(value_states.shape, 0, value_states)
        self._length = 0
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object,
               **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self._keys is not None and self._values is not None
        end = self._length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            self._keys = self._grown(self._keys, end)
            self._values = self._grown(self._values, end)
        self._keys[:, :, self._length:end] = key_states
        self._values[:, :, self._length:end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def _grown(self, old: torch.Tensor, needed: int) -> torch.Tensor:
        new = self.buffer(old.shape, needed, old)
        new[:, :, : self._length] = old[:, :, : self._length]
        return new

    def _expose(self) -> None:
        assert self._keys is not None and self._values is not None
        self.keys = self._keys[:, :, : self._length]
        self.values = self._values[:, :, : self._length]

    def get_seq_length(self) -> int:
        return self._length

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a GrowingLayer is not cropped: crop the per-chat caches instead")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("a GrowingLayer is not re-batched")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        raise NotImplementedError("a GrowingLayer is not re-batched")


def growing_cache(layers: Sequence[tuple[torch.Tensor, torch.Tensor]] = (), length: int = 0) -> Cache:
    """A cache of :class:`GrowingLayer` over per-layer ``(keys, values)`` buffers whose first ``length``
    slots are filled; with no buffers, layers are made at the first forward."""
    if not layers:
        return Cache(layer_class_to_replicate=GrowingLayer)
    return Cache(layers=[GrowingLayer(k, v, length) for k, v in layers])
