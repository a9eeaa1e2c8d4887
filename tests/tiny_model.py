"""A tiny random language model for tests, built in memory: no downloads, milliseconds.

A byte-level BPE tokenizer (so any text encodes) trained on a few game
sentences, wrapped as a transformers fast tokenizer with a ChatML chat
template, and a 2-layer Llama with hidden size 32 in float32 on CPU.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "You are playing a game with another agent, for several rounds.",
    "Choose your action for this round: answer with <A> or <B>.",
    "The other agent played <B> last round. you get 3, the other gets 5",
    "<propose hats=3 books=10 balls=0> <keep coins=7> <take books=1 hats=2 balls=0>",
    "<<message_start>>I have the upper hand, let me keep all coins.<<message_end>>",
    "rock paper scissors values 1 10 points proposal message",
]


@lru_cache(maxsize=1)
def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>", chat_template=CHAT_TEMPLATE
    )


def tiny_model(seed: int = 0, attn: str = "sdpa") -> Any:
    """A random 2-layer Llama over :func:`tiny_tokenizer`'s vocabulary, in eval mode."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        initializer_range=0.3,  # peakier next-token distributions than the default 0.02
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config._attn_implementation = attn
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def tiny_lm(seed: int = 0, attn: str = "sdpa", **lora: Any) -> Any:
    """A :class:`~detente.policies.llm_backend.LoRAModel` on a fresh tiny model (LoRA rank 4 by default),
    with its own copy of the tokenizer (a test may change its chat template)."""
    from detente.policies.llm_backend import LoRAModel

    lora = {"lora_r": 4, "lora_alpha": 8, **lora}
    return LoRAModel(tiny_model(seed, attn), copy.deepcopy(tiny_tokenizer()), **lora)
