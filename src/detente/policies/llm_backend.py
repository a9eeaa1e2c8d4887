"""One base language model shared by many policies: LoRA adapters and a packed batched forward.

:class:`LoRAModel` holds a transformers causal LM, its tokenizer and any
number of named peft LoRA adapters (rank/alpha per adapter, every linear
layer targeted, as in the paper: rank 32, alpha 64). There is one copy of the
base weights however many adapters are loaded; :meth:`LoRAModel.active`
switches to one adapter, or switches all of them off for the reference model.

:class:`PackedBatch` advances a batch of chats together. Each chat brings its
own key/value cache (:class:`KV`, whatever its length); the caches are stacked
once per batch, and every forward takes a small *tree* of query tokens per
chat: a chain of new chat tokens that is kept in the cache, plus optional
scoring branches (the candidate answers of a choice) that see the chat and
their own ancestors only and are forgotten afterwards. This is done with an
explicit 4D additive attention mask and explicit position ids, so padding can
sit anywhere and nothing is computed twice. It needs ``sdpa`` attention (on
the CPU, the variant in :mod:`detente.policies.attention`) or ``eager``, a
decoder with standard attention layers, and chats shorter than any sliding
window (the mask does not apply one).

The stacked cache grows in place (:mod:`detente.policies.growing_cache`): a forward writes its
new keys/values into spare room instead of copying the history. Keys and values follow the
layout of transformers' caches (per layer ``(batch, kv_heads, seq, head_dim)``); adapters follow
peft's multi-adapter API (``add_adapter`` / ``set_adapter`` / ``disable_adapter``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from detente.atomic import atomic_dir
from detente.policies.attention import use_gqa_attention
from detente.policies.growing_cache import GrowingLayer, growing_cache

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


# --------------------------------------------------------------------------
# The shared model
# --------------------------------------------------------------------------
class LoRAModel:
    """A base causal LM + tokenizer + named LoRA adapters; one copy of the base weights.

    Policies are light views on it (:class:`detente.policies.llm.LLMPolicy`): each acts with one
    adapter or with the adapters off.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        lora_r: int = 32,
        lora_alpha: int = 64,
        lora_dropout: float = 0.0,
        target_modules: str | list[str] = "all-linear",
    ) -> None:
        if lora_r < 1:
            raise ValueError(f"lora_r must be >= 1, got {lora_r}")
        if lora_alpha <= 0:
            raise ValueError(f"lora_alpha must be > 0, got {lora_alpha}")
        check_packable(model.config)
        if getattr(model.config, "_attn_implementation", None) != "eager":
            # The packed forward passes a 4D float mask, which sdpa and eager take as is; on the CPU,
            # sdpa that broadcasts grouped key/value heads instead of copying them (same numbers).
            model.set_attn_implementation("sdpa")
            use_gqa_attention(model)
        self.base = model
        """The transformers model; LoRA layers are injected into it in place."""
        self.model: Any = model
        """What to call: the base model until the first adapter, then the peft model wrapping it."""
        self.tokenizer = tokenizer
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.target_modules = target_modules
        self._versions: dict[str, int] = {}

    @classmethod
    def load(
        cls,
        name_or_path: str = "smollm2",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        **lora: Any,
    ) -> LoRAModel:
        """Load a model with :func:`detente.models.load_model` and wrap it."""
        from detente.models import load_model

        model, tokenizer = load_model(name_or_path, device=device, dtype=dtype)
        return cls(model, tokenizer, **lora)

    # -- adapters ---------------------------------------------------------
    @property
    def adapters(self) -> list[str]:
        """Names of the loaded adapters."""
        config = getattr(self.model, "peft_config", None)
        return sorted(config) if config else []

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.base.parameters()).dtype

    def lora_config(self, r: int | None = None, alpha: int | None = None) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=r or self.lora_r,
            lora_alpha=alpha or self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.target_modules,
            task_type="CAUSAL_LM",
        )

    def add_adapter(self, name: str, *, r: int | None = None, alpha: int | None = None) -> None:
        """Add a fresh adapter (peft's default init: B = 0, so it starts equal to the base model)."""
        self._add(name, self.lora_config(r, alpha))

    def _add(self, name: str, config: Any) -> None:
        from peft import get_peft_model

        if not name or "." in name:
            raise ValueError(f"adapter names must be non-empty and dot-free, got {name!r}")
        if name in self.adapters:
            raise ValueError(f"adapter {name!r} exists already; loaded: {', '.join(self.adapters)}")
        if self.model is self.base:
            with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 alias deprecated in v6
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
                self.model = get_peft_model(self.base, config, adapter_name=name)
        else:
            self.model.add_adapter(name, config)
        self._freeze(name)
        self.touch(name)

    def _freeze(self, name: str) -> None:
        """New adapters start frozen; a trainer turns on the gradients of the one it trains."""
        for param_name, param in self.model.named_parameters():
            if f".{name}." in param_name and "lora_" in param_name:
                param.requires_grad_(False)

    def version(self, name: str) -> int:
        """A number that changes whenever adapter ``name``'s weights may have changed (it is added, loaded,
        copied into or :meth:`touch`-ed): a generation engine reloads the adapter when it differs."""
        self._check(name)
        return self._versions.get(name, 0)

    def touch(self, name: str) -> None:
        """Say that adapter ``name``'s weights changed (the trainer calls it after every optimizer step)."""
        self._versions[name] = self._versions.get(name, 0) + 1

    def trainable_parameters(self, name: str) -> list[torch.nn.Parameter]:
        """Turn on the gradients of adapter ``name`` and return its parameters (for an optimizer)."""
        self._check(name)
        params = [p for n, p in self.model.named_parameters() if "lora_" in n and f".{name}." in n]
        for param in params:
            param.requires_grad_(True)
        return params

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load an adapter saved by :meth:`save_adapter` (or any peft LoRA folder) as ``name``."""
        from peft import PeftModel

        path = Path(path)
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"no adapter_config.json in {path}")
        if name in self.adapters:
            raise ValueError(f"adapter {name!r} exists already; loaded: {', '.join(self.adapters)}")
        if self.model is self.base:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
                self.model = PeftModel.from_pretrained(self.base, path, adapter_name=name)
        else:
            self.model.load_adapter(path, adapter_name=name)
        self._freeze(name)
        self.touch(name)

    def save_adapter(self, name: str, path: str | Path) -> Path:
        """Write ``name`` as a peft adapter folder (config + safetensors weights), atomically."""
        from safetensors.torch import save_file

        self._check(name)
        path = Path(path)
        with atomic_dir(path) as tmp:
            self.model.peft_config[name].save_pretrained(tmp)
            save_file(self.adapter_state(name), tmp / ADAPTER_WEIGHTS)
        return path

    def adapter_state(self, name: str) -> dict[str, torch.Tensor]:
        """Adapter ``name``'s LoRA weights (peft's state dict: names without the adapter name), as
        contiguous CPU copies: what a checkpoint holds and what a rollout worker receives."""
        from peft import get_peft_model_state_dict

        self._check(name)
        state = get_peft_model_state_dict(self.model, adapter_name=name)
        return {k: v.detach().contiguous().cpu().clone() for k, v in state.items()}

    def set_adapter_state(self, name: str, state: dict[str, torch.Tensor], source: str = "the state") -> None:
        """Overwrite adapter ``name``'s weights with ``state`` (an :meth:`adapter_state`). The tensors must
        match the adapter's in names and shapes, both ways; ``source`` names them in the error."""
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        self._check(name)
        current = get_peft_model_state_dict(self.model, adapter_name=name)
        problems = [f"{k} missing in {source}" for k in current if k not in state]
        problems += [f"{k} not in adapter {name!r}" for k in state if k not in current]
        problems += [f"{k}: {source} {tuple(state[k].shape)} vs adapter {tuple(v.shape)}"
                     for k, v in current.items() if k in state and state[k].shape != v.shape]
        if problems:
            raise ValueError(f"{source} does not fit adapter {name!r} ({len(state)} tensors in {source}, "
                             f"{len(current)} in the adapter; {len(problems)} differ): "
                             + "; ".join(problems[:3]))
        set_peft_model_state_dict(self.model, state, adapter_name=name)
        self.touch(name)

    def load_weights(self, name: str, path: str | Path) -> None:
        """Overwrite adapter ``name``'s weights with those saved in ``path`` (a :meth:`save_adapter`
        folder). The saved tensors must match the adapter's in names and shapes, both ways."""
        from safetensors.torch import load_file

        self._check(name)
        try:
            self.set_adapter_state(name, load_file(Path(path) / ADAPTER_WEIGHTS), source="the file")
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def copy_adapter(self, source: str, target: str) -> None:
        """Add ``target`` as a frozen copy of ``source`` (e.g. a past checkpoint of the learner)."""
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        self._check(source)
        self._add(target, self.model.peft_config[source])
        state = get_peft_model_state_dict(self.model, adapter_name=source)
        set_peft_model_state_dict(self.model, {k: v.detach().clone() for k, v in state.items()},
                                  adapter_name=target)
        self._freeze(target)
        self.touch(target)

    def delete_adapter(self, name: str) -> None:
        self._check(name)
        self.model.delete_adapter(name)

    def _check(self, name: str) -> None:
        if name not in self.adapters:
            loaded = ", ".join(self.adapters) or "none"
            raise KeyError(f"no adapter {name!r}; loaded: {loaded}")

    @contextmanager
    def active(self, adapter: str | None) -> Iterator[Any]:
        """Run the model with ``adapter`` on (or every adapter off for ``None``), in eval mode.

        Restores the previously active adapter, the ``requires_grad`` flags that
        peft's ``set_adapter`` changes, and train/eval mode afterwards.
        """
        model = self.model
        was_training = model.training
        model.eval()
        try:
            if adapter is None:
                if model is self.base:
                    yield model
                else:
                    with model.disable_adapter():
                        yield model
                return
            self._check(adapter)
            previous = model.active_adapter
            flags = [(p, p.requires_grad) for n, p in model.named_parameters() if "lora_" in n]
            model.set_adapter(adapter)
            try:
                yield model
            finally:
                model.set_adapter(previous)
                for param, flag in flags:
                    param.requires_grad_(flag)
        finally:
            model.train(was_training)

    def enable_checkpointing(self) -> None:
        """Recompute each decoder layer in the backward instead of keeping its activations.

        transformers drops a layer's cache argument under checkpointing, in case the layer writes to
        it (the replay would write twice). The trainer's caches are read-only views of a shared
        prefix (:class:`detente.train.terms.SharedPrefixKV`), so the layers are told they may keep it.
        """
        self.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        for layer in getattr(self.base.get_decoder(), "layers", []):
            layer._can_checkpoint_with_cache = True

    # -- memory -----------------------------------------------------------
    def parameter_bytes(self) -> dict[str, int]:
        """Bytes of distinct parameter storage: ``base`` and one entry per adapter."""
        sizes: dict[str, int] = {"base": 0, **{name: 0 for name in self.adapters}}
        seen: set[int] = set()
        for param_name, param in self.model.named_parameters():
            ptr = param.untyped_storage().data_ptr()
            if ptr in seen:  # tied weights (embeddings / lm_head) count once
                continue
            seen.add(ptr)
            owner = "base"
            if "lora_" in param_name:
                owner = next((a for a in self.adapters if f".{a}." in param_name), "base")
            sizes[owner] += param.numel() * param.element_size()
        return sizes

    def __repr__(self) -> str:
        name = getattr(self.base.config, "_name_or_path", type(self.base).__name__)
        return f"LoRAModel({name!r}, adapters={self.adapters})"


def check_packable(config: Any) -> None:
    """Raise ``ValueError`` for a model the packed forward cannot serve exactly.

    The packed forward (and the trainer's, :mod:`detente.train.terms`) passes an explicit 4D
    attention mask, which says who sees whom and nothing else: a sliding attention window would
    not be applied. Models with one (Mistral v0.1, Gemma 2/3's sliding layers, Qwen2 with
    ``use_sliding_window``) are refused rather than served wrong.
    """
    name = getattr(config, "_name_or_path", "") or getattr(config, "model_type", "this model")
    layer_types = getattr(config, "layer_types", None) or []
    window = getattr(config, "sliding_window", None)
    sliding = any("sliding" in str(kind) for kind in layer_types)
    if window and getattr(config, "use_sliding_window", True) is not False and not layer_types:
        sliding = True
    if sliding:
        raise ValueError(f"model {name!r} uses sliding-window attention (window {window} tokens), which "
                         "detente's packed forward does not apply; it cannot be served exactly")


Head = Callable[[torch.Tensor], torch.Tensor]
"""A model's output head: hidden states ``(..., H)`` -> logits ``(..., V)``."""


def decoder_forward(model: Any, **inputs: Any) -> tuple[torch.Tensor, Head, Any]:
    """One forward of the decoder: its last hidden state ``(B, L, H)``, the output head as a function
    of hidden states, and the key/value cache.

    The head is applied only where the caller reads (``logits = head(hidden[positions])``): the
    ``(B, L, V)`` logits of every position are never formed. Models whose head does more than a
    linear map (soft-capping, a logit scale) run the full forward instead; their "hidden state" is
    then the logits and the head the identity.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        out = model(**inputs)
        return out.logits, lambda logits: logits, out.past_key_values
    out = base.get_decoder()(**inputs)
    return out.last_hidden_state, base.get_output_embeddings(), out.past_key_values


# --------------------------------------------------------------------------
# Per-chat key/value caches and the packed forward
# --------------------------------------------------------------------------
@dataclass
class KV:
    """Keys/values of a chat's first ``length`` tokens: per layer ``(keys, values)``, each ``(H, L, D)``."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def length(self) -> int:
        return int(self.layers[0][0].shape[1]) if self.layers else 0

    def crop(self, length: int) -> KV | None:
        """The cache of the first ``length`` tokens (None if that is nothing)."""
        if length <= 0:
            return None
        if length >= self.length:
            return self
        return KV([(k[:, :length], v[:, :length]) for k, v in self.layers])

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers)


@dataclass
class Query:
    """Tokens one chat feeds in one forward, as a tree hanging off its cached tokens.

    ``parents[i]`` is the index of token i's parent among these tokens (it
    must be smaller than i), or -1 for a token that follows the cache
    directly. Token i sees the cached tokens, its ancestors and itself; its
    position is the cache length plus its depth. The first ``keep`` tokens
    must be a chain (parents -1, 0, 1, ...): they are added to the cache. The
    rest are scoring branches, forgotten after the forward.
    """

    tokens: list[int]
    parents: list[int]
    keep: int
    want: list[int]
    """Indices of tokens whose next-token logits are returned."""

    @classmethod
    def chain(cls, tokens: Sequence[int], want: Sequence[int] = ()) -> Query:
        return cls(list(tokens), list(range(-1, len(tokens) - 1)), len(tokens), list(want))


class PackedBatch:
    """Several chats advanced together over one stacked key/value cache (see the module doc)."""

    def __init__(self, model: Any, pasts: Sequence[KV | None], pad_id: int = 0) -> None:
        self.model = model
        self.pad_id = pad_id
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        B = len(pasts)  # chats in the batch
        self.lengths = [p.length if p is not None else 0 for p in pasts]
        """Tokens of each chat in the cache (= position of its next kept token)."""
        S = max(self.lengths, default=0)  # stacked past length
        self.visible = torch.zeros(B, S, dtype=torch.bool, device=self.device)
        """``visible[b, s]``: cache slot s holds a real token of chat b."""
        if S == 0:
            self.cache = growing_cache()
            return
        template = next(p for p in pasts if p is not None)
        data = []
        for layer, (k0, v0) in enumerate(template.layers):
            keys = GrowingLayer.buffer((B, k0.shape[0], S, k0.shape[2]), S, k0)
            values = GrowingLayer.buffer((B, v0.shape[0], S, v0.shape[2]), S, v0)
            for b, past in enumerate(pasts):
                if past is not None and past.length:
                    k, v = past.layers[layer]
                    keys[b, :, : past.length] = k
                    values[b, :, : past.length] = v
            data.append((keys, values))
        for b, length in enumerate(self.lengths):
            self.visible[b, :length] = True
        self.cache = growing_cache(data, S)

    def step(self, queries: Sequence[Query | None]) -> list[torch.Tensor]:
        """One forward of every chat's query tree; returns per chat the float32 logits ``(len(want), V)``."""
        if self.cache is None:
            raise RuntimeError("this packed batch's caches were already taken")
        B = len(queries)
        queries = [q if q is not None and q.tokens else Query([self.pad_id], [-1], 0, []) for q in queries]
        Q = max(len(q.tokens) for q in queries)  # query tokens per chat, padded
        S = self.visible.shape[1]  # cache slots so far
        ids = torch.full((B, Q), self.pad_id, dtype=torch.long)
        positions = torch.zeros(B, Q, dtype=torch.long)
        sees = torch.zeros(B, Q, Q, dtype=torch.bool)  # query-to-query visibility (tree ancestry)
        want = torch.zeros(B, Q, dtype=torch.bool)
        kept = torch.zeros(B, Q, dtype=torch.bool)
        chain_mask = torch.ones(Q, Q, dtype=torch.bool).tril()
        for b, q in enumerate(queries):
            n = len(q.tokens)
            ids[b, :n] = torch.tensor(q.tokens, dtype=torch.long)
            if q.parents[: q.keep] != list(range(-1, q.keep - 1)):
                raise ValueError(f"the first keep={q.keep} query tokens must be a chain")
            depth = list(range(q.keep)) + [0] * (n - q.keep)
            sees[b, : q.keep, : q.keep] = chain_mask[: q.keep, : q.keep]
            for i in range(q.keep, n):  # scoring branches: ancestors + self
                parent = q.parents[i]
                if parent >= 0:
                    if parent >= i:
                        raise ValueError(f"query token {i} has parent {parent}; parents must come first")
                    sees[b, i] = sees[b, parent]
                    depth[i] = depth[parent] + 1
                sees[b, i, i] = True
            for i in range(n, Q):  # padding sees the cache and itself, so no row is fully masked
                sees[b, i, i] = True
            positions[b, :n] = torch.tensor(depth, dtype=torch.long) + self.lengths[b]
            positions[b, n:] = self.lengths[b]
            if q.want:
                want[b, q.want] = True
            kept[b, : q.keep] = True
        visible = torch.cat([self.visible.unsqueeze(1).expand(B, Q, S), sees.to(self.device)], dim=2)
        mask = torch.zeros(B, 1, Q, S + Q, dtype=self.dtype, device=self.device)
        mask.masked_fill_(~visible.unsqueeze(1), torch.finfo(self.dtype).min)
        hidden, head, self.cache = decoder_forward(
            self.model, input_ids=ids.to(self.device), attention_mask=mask,
            position_ids=positions.to(self.device), past_key_values=self.cache, use_cache=True,
        )
        self.visible = torch.cat([self.visible, kept.to(self.device)], dim=1)
        for b, q in enumerate(queries):
            self.lengths[b] += q.keep
        logits = head(hidden[want.to(self.device)]).float()  # (total wanted, V), in (chat, index) order
        counts = want.sum(dim=1).tolist()
        per_chat = list(torch.split(logits, counts))
        # the boolean gather returns the wanted positions in index order; reorder to each query's want order
        for b, q in enumerate(queries):
            if q.want and q.want != sorted(q.want):
                order = {index: row for row, index in enumerate(sorted(q.want))}
                per_chat[b] = per_chat[b][[order[i] for i in q.want]]
        return per_chat

    def caches(self) -> list[KV]:
        """Each chat's cache, compacted to its real tokens: a gathered copy, or for a batch of one chat
        whose tokens fill one run of slots, a view of the batch's cache (no copy; a view into a batch
        of several chats would keep all their keys and values alive).

        The batch's own cache is released layer by layer as the copies are made, so the two exist
        side by side for one layer only; this is the batch's last use."""
        if self.cache is None:
            raise RuntimeError("this packed batch's caches were already taken")
        B = self.visible.shape[0]
        indices = [self.visible[b].nonzero().squeeze(1) for b in range(B)]
        runs = [slice(int(index[0]), int(index[-1]) + 1)
                if B == 1 and len(index) and int(index[-1] - index[0]) + 1 == len(index) else None
                for index in indices]
        layers: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(B)]
        cache_layers = self.cache.layers
        for i, layer in enumerate(cache_layers):
            for b, (index, run) in enumerate(zip(indices, runs, strict=True)):
                if run is not None:
                    layers[b].append((layer.keys[b][:, run], layer.values[b][:, run]))
                else:
                    layers[b].append((layer.keys[b].index_select(1, index),
                                      layer.values[b].index_select(1, index)))
            cache_layers[i] = None  # this layer's stacked keys/values go now
        self.cache = None
        return [KV(chat_layers) for chat_layers in layers]
