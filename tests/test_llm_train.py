"""The LLM trainer on tiny random models: every game and algorithm, token alignment, resume, buffer."""

import json
from collections import Counter

import pytest
import torch

from detente.config import load_config
from detente.runs import read_jsonl
from detente.train.llm import LEARNER, LLMTrainer, round_credit, train_llm
from detente.train.seating import plan, training_rows
from detente.train.terms import term_batch, term_logprobs
from llm_helpers import perturb
from tiny_model import tiny_lm

FAST = ["agent.kind=llm", "train.lr=0.01", "agent.max_message_tokens=6", "train.iterations=1",
        "train.games_per_iteration=4", "credit.group_size=2", "game.params={n_rounds: 2}"]


def config(*overrides):
    return load_config(None, [*FAST, *overrides])


def lora_state(lm):
    return {n: p.detach().clone() for n, p in lm.model.named_parameters() if f".{LEARNER}." in n}


@pytest.mark.parametrize("algorithm", ["naive", "sum_rewards", "adalign"])
@pytest.mark.parametrize(
    ("game", "extra"),
    [
        # the tiny model plays IPD nearly deterministically; a random co-player makes rewards vary
        ("ipd", ["coplayer=random", "credit.group_baseline=false"]),
        ("split", []),
        ("trust_split", []),
        # random Deal claims are never complementary (reward 0 for all): an entropy bonus gives a gradient
        ("deal", ["train.entropy_coef=0.01"]),
    ],
)
def test_one_iteration_of_every_game_and_algorithm_changes_the_adapter(tmp_path, game, extra, algorithm):
    lm = tiny_lm()
    lm.add_adapter(LEARNER)
    before = lora_state(lm)
    record = train_llm(config(f"game.name={game}", f"credit.algorithm={algorithm}", *extra), tmp_path, lm=lm)
    after = lora_state(lm)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert record["grad_norm"] > 0
    assert record["tokens"] > 0 and record["invalid_rate"] <= 1.0
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 1
    transcript = (tmp_path / "transcripts" / "iter_0.jsonl").read_text().splitlines()
    assert len(transcript) == 4 and json.loads(transcript[0])["chats"]


def first_batch(cfg, out, lm=None):
    """A fresh trainer and the term batch of its first iteration's self-play games, before any update."""
    from detente.rollout.play import play

    trainer = LLMTrainer(cfg, out, lm=lm or tiny_lm())
    seatings = plan(cfg, 0, trainer.learner, None, [])
    games = [trainer.game_factory() for _ in seatings]
    play(games, [s.players for s in seatings], [s.seed for s in seatings],
         streams=list(range(len(seatings))))
    rows = training_rows(seatings)
    C, _ = round_credit(cfg, games, rows, trainer.reward_scale)
    return trainer, term_batch([trainer.learner.trajectories[s][t] for s, t in rows], C, 0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("game", ["ipd", "split", "trust_split"])
def test_recorded_sampler_logprobs_equal_the_training_recompute(tmp_path, game, temperature):
    """rho = 1 before the first update: the loss recomputes log pi of every draw over its legal options
    and of every message token, at the sampling temperature, exactly as the sampler drew them."""
    lm = tiny_lm()
    lm.add_adapter(LEARNER)
    perturb(lm, LEARNER, seed=4, scale=0.3)
    cfg = config(f"game.name={game}", f"agent.temperature={temperature}")
    trainer, batch = first_batch(cfg, tmp_path, lm)
    with torch.no_grad(), trainer.lm.active(LEARNER) as model:
        logp, H = term_logprobs(model, batch, len(lm.tokenizer), temperature)
    assert batch.n_terms > 10 and batch.lost == 0
    torch.testing.assert_close(logp, batch.logp_old, atol=2e-5, rtol=0)
    assert bool((H >= 0).all()) and float(H.max()) > 0.01


def test_seed_groups_share_the_environment_and_rows_are_grouped_by_seat():
    cfg = config("train.games_per_iteration=8", "credit.group_size=4")
    learner = object()
    seatings = plan(cfg, 0, learner, None, [])
    assert [s.group for s in seatings] == [0] * 4 + [1] * 4
    assert len({s.seed for s in seatings[:4]}) == 1 and seatings[0].seed != seatings[4].seed
    rows = training_rows(seatings)
    assert rows[:4] == [(0, 0), (1, 0), (2, 0), (3, 0)] and rows[4:8] == [(0, 1), (1, 1), (2, 1), (3, 1)]


def test_fixed_coplayer_alternates_the_learners_seat_by_group():
    cfg = config("train.games_per_iteration=8", "credit.group_size=2", "coplayer=alld")
    learner, fixed = object(), object()
    seatings = plan(cfg, 0, learner, fixed, [])
    assert [s.trained for s in seatings] == [(0,), (0,), (1,), (1,)] * 2
    assert all(s.players[s.trained[0]] is learner for s in seatings)


def test_killed_run_resumes_to_the_same_metrics(tmp_path):
    cfg = config("train.iterations=4", "game.name=split", "train.checkpoint_every=2")
    straight = train_llm(cfg, tmp_path / "straight", lm=tiny_lm())

    class Killed(Exception):
        pass

    def kill_after_second(record):
        if record["iteration"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train_llm(cfg, tmp_path / "killed", kill_after_second, lm=tiny_lm())
    resumed = train_llm(cfg, tmp_path / "killed", resume=True, lm=tiny_lm())
    timing = {"seconds", "perf/rollout_seconds"}
    assert {k: v for k, v in resumed.items() if k not in timing} == \
        {k: v for k, v in straight.items() if k not in timing}
    assert [r["iteration"] for r in read_jsonl(tmp_path / "killed" / "metrics.jsonl")] == [0, 1, 2, 3]
    kept = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").glob("iter_*"))
    assert kept == ["iter_2", "iter_4"]


def test_opponent_buffer_plays_past_checkpoints_and_trains_only_the_learner_seat(tmp_path):
    cfg = config("train.iterations=2", "buffer.enabled=true", "buffer.every=1", "buffer.prob=1.0")
    train_llm(cfg, tmp_path, lm=tiny_lm())
    lines = (tmp_path / "transcripts" / "iter_1.jsonl").read_text().splitlines()
    second = [json.loads(line) for line in lines]
    assert all("past-1" in game["players"] and len(game["trained_seats"]) == 1 for game in second)
    snapshot = tmp_path / "checkpoints" / "buffer" / "past-1" / "adapter_model.safetensors"
    assert snapshot.is_file()


def test_proximal_variant_and_kl_penalty_run(tmp_path):
    record = train_llm(config("game.name=split", "train.epochs=2", "train.kl_coef=0.01"), tmp_path,
                       lm=tiny_lm())
    assert record["kl"] is not None and record["kl"] >= 0
    assert torch.isfinite(torch.tensor(record["loss"]))


def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_gradients(tmp_path):
    """train.gradient_checkpointing: the decoder's MLPs run again in the backward; gradients unchanged."""
    results = {}
    for on in (False, True):
        cfg = config("game.name=trust_split", f"train.gradient_checkpointing={str(on).lower()}")
        trainer, batch = first_batch(cfg, tmp_path / str(on))
        mlp_calls = Counter()
        mlp = trainer.lm.base.model.layers[0].mlp
        # a pre-hook: torch's recomputation stops as soon as it has what the backward needs
        hook = mlp.register_forward_pre_hook(lambda *_, calls=mlp_calls: calls.update(["mlp"]))
        trainer._micro_batch_loss(batch, batch.n_terms)["loss"].backward()
        hook.remove()
        grads = {n: p.grad.clone() for n, p in trainer.lm.model.named_parameters() if p.grad is not None}
        results[on] = (mlp_calls["mlp"], grads)
    assert results[False][0] == 1 and results[True][0] == 2  # one forward, then its recomputation
    assert results[False][1].keys() == results[True][1].keys() and results[True][1]
    for name, grad in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], grad, atol=1e-6, rtol=1e-5)
