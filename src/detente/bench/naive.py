"""The naive baseline of ``detente bench``: one ``model.generate()`` call per decision attempt.

What a first LLM agent usually looks like: keep the chat as role/content
messages, render the whole chat with the tokenizer's chat template, tokenise
it, call ``generate`` with plain sampling at temperature 1, decode the reply
and hand it to the game. One decision at a time (no batching), and no
key/value cache kept between calls (every call forwards the whole chat again;
``generate`` caches only within the call). The chat holds the same messages an
:class:`~detente.policies.llm.LLMPolicy` would hold: the user turns of
:func:`~detente.policies.chat.user_turn` (the game's text, or the re-ask with
the parser's reason) and the model's own replies. The replies are free text:
the game's parser reads them, and the play loop re-asks a reply it refuses,
as for any policy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from detente.games.base import MessageSpec, Seat
from detente.policies.base import Decision, Policy
from detente.policies.chat import user_turn
from detente.policies.llm_backend import LoRAModel

ACTION_TOKENS = 16
"""Token limit of a reply to a choice or a proposal: the answer tag and a few words around it."""


class NaivePolicy(Policy):
    """A language model answering each decision with one ``generate`` call over its full chat.

    ``max_message_tokens`` limits a free-text message (the bench gives detente's policy the same
    limit); a choice or proposal reply gets :data:`ACTION_TOKENS`. Sampling draws from torch's
    global generator: seed it (``torch.manual_seed``) before a run to repeat it.
    """

    def __init__(self, lm: LoRAModel, max_message_tokens: int, name: str = "naive") -> None:
        if max_message_tokens < 1:
            raise ValueError(f"max_message_tokens must be >= 1, got {max_message_tokens}")
        self.lm = lm
        self.max_message_tokens = max_message_tokens
        self.name = name
        self.chats: dict[tuple[int, Seat], list[dict[str, str]]] = {}
        """``(slot, seat)`` -> that seat's chat in that game, as role/content messages."""
        self.stats: Counter[str] = Counter()
        """Counts: calls (``generate`` calls: one per decision attempt), prompt_tokens (tokens of
        every call's full chat), generated_tokens."""

    def begin(self, n_slots: int) -> None:
        self.chats = {}

    def chat(self, slot: int, seat: Seat) -> list[dict[str, str]] | None:
        return self.chats.get((slot, seat))

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        return [self._answer(decision) for decision in decisions]

    def _answer(self, decision: Decision) -> str:
        """Append the user turn, generate a reply over the whole chat, append the reply."""
        messages = self.chats.setdefault((decision.slot, decision.seat), [])
        messages.append({"role": "user", "content": user_turn(decision)})
        tokenizer = self.lm.tokenizer
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.lm.device)
        limit = self.max_message_tokens if isinstance(decision.spec, MessageSpec) else ACTION_TOKENS
        with self.lm.active(None) as model, torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
                top_k=0, top_p=1.0, max_new_tokens=limit, pad_token_id=self._pad_id(),
            )
        new = out[0, ids.shape[1]:]
        self.stats.update(calls=1, prompt_tokens=ids.shape[1], generated_tokens=new.shape[0])
        reply = tokenizer.decode(new, skip_special_tokens=True)
        messages.append({"role": "assistant", "content": reply})
        return reply

    def _pad_id(self) -> int:
        tokenizer = self.lm.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
