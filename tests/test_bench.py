"""``detente bench`` on a tiny random model: the naive baseline's calls. Counts only: no speed is asserted."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from detente.bench.naive import ACTION_TOKENS, NaivePolicy  # noqa: E402
from detente.games import make_game  # noqa: E402
from detente.policies.llm import LLMPolicy  # noqa: E402
from detente.rollout.play import play  # noqa: E402
from tiny_model import tiny_lm  # noqa: E402


def counting_generate(lm, calls):
    """Wrap the model's ``generate``: record each call's prompt ids, token limit, and whether it was
    handed a cache."""
    generate = lm.base.generate

    def wrapper(*args, **kwargs):
        calls.append({"ids": kwargs["input_ids"][0].tolist(), "limit": kwargs["max_new_tokens"],
                      "cache": "past_key_values" in kwargs})
        return generate(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("game", ["ipd", "trust_split"])
def test_naive_calls_generate_once_per_attempt_over_the_full_chat(game, monkeypatch):
    lm = tiny_lm()
    calls = []
    monkeypatch.setattr(lm.base, "generate", counting_generate(lm, calls))
    naive = NaivePolicy(lm, max_message_tokens=6)
    torch.manual_seed(0)
    episodes = play([make_game(game, n_rounds=2) for _ in range(2)], [(naive, naive)] * 2, [0, 1])
    attempts = sum(d.tries for e in episodes for d in e.decisions)
    assert attempts > sum(len(e.decisions) for e in episodes)  # the tiny model's replies get re-asked
    assert len(calls) == naive.stats["calls"] == attempts
    assert not any(call["cache"] for call in calls)
    limits = {6, ACTION_TOKENS} if game == "trust_split" else {ACTION_TOKENS}  # messages get 6 tokens
    assert {call["limit"] for call in calls} == limits
    # every call forwards its chat from the first token: the full template of the messages so far
    prompts = [call["ids"] for call in calls]
    for messages in naive.chats.values():
        for i, message in enumerate(messages):
            if message["role"] == "user":
                text = lm.tokenizer.apply_chat_template(messages[:i + 1], tokenize=False,
                                                        add_generation_prompt=True)
                assert lm.tokenizer(text, add_special_tokens=False)["input_ids"] in prompts


def test_naive_chats_start_as_detente_s():
    lm = tiny_lm()
    naive, ours = NaivePolicy(lm, max_message_tokens=5), LLMPolicy(lm, None)
    for policy in (naive, ours):
        play([make_game("ipd", n_rounds=2)], [(policy, policy)], [3])
    for seat in (0, 1):  # the same rules and first round, as the first user turn
        assert naive.chat(0, seat)[0] == ours.chat(0, seat)[0]
