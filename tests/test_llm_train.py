"""The LLM trainer on tiny random models: every game and algorithm, token alignment, resume, buffer."""

import json
import math
from collections import Counter

import pytest
import torch

from detente.config import load_config
from detente.runs import read_metrics, read_run_info
from detente.train.llm import LEARNER, LLMTrainer, round_credit, train_llm
from detente.train.seating import plan, training_rows
from detente.train.terms import term_batch, term_logprobs
from llm_helpers import perturb, self_play_batch, stop_after
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
    values = record.values
    assert values["loss/grad_norm"] > 0 and values["loss/nonfinite_steps"] == 0
    assert values["data/terms"] > 0 and values["data/tokens"] >= values["data/terms"]
    data = ("template_resets", "truncated", "wrapped", "lost_terms")
    assert {f"data/{key}" for key in data} <= values.keys()
    assert read_metrics(tmp_path) == [record]
    assert read_run_info(tmp_path).producer == "llm"
    transcript = (tmp_path / "transcripts" / "iter_0.jsonl").read_text().splitlines()
    assert len(transcript) == 4 and json.loads(transcript[0])["chats"]


def first_batch(cfg, out, lm=None):
    """A fresh trainer and the term batch of its first iteration's self-play games, before any update."""
    trainer = LLMTrainer(cfg, out, lm=lm or tiny_lm())
    chats, C = self_play_batch(trainer)
    return trainer, term_batch(chats, C, 0)


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
    stop_after(cfg, tmp_path / "killed", 1, tiny_lm())
    resumed = train_llm(cfg, tmp_path / "killed", resume=True, lm=tiny_lm())
    assert resumed.without_perf() == straight.without_perf()
    assert [line.iteration for line in read_metrics(tmp_path / "killed")] == [0, 1, 2, 3]
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


def test_proximal_variant_clips_ratios_that_leave_the_band_and_moves_away_from_the_reference(tmp_path):
    """epochs > 1: after the first epoch's step the ratios leave [1 - eps, 1 + eps] (clip_frac > 0)
    and the learner is no longer the reference (k3 KL > 0). One epoch: rho = 1, nothing clipped."""
    ppo = train_llm(config("game.name=split", "train.epochs=4", "train.clip_eps=0.01", "train.lr=0.05",
                           "train.kl_coef=0.01"), tmp_path / "ppo", lm=tiny_lm())
    assert ppo.values["loss/clip_frac"] > 0.05 and ppo.values["loss/kl"] > 1e-4
    single = train_llm(config("game.name=split", "train.kl_coef=0.01"), tmp_path / "one", lm=tiny_lm())
    assert single.values["loss/clip_frac"] == 0.0 and single.values["loss/kl"] == pytest.approx(0.0, abs=1e-7)


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
        with trainer.main.training() as model:
            trainer.main.micro_batch_loss(model, batch, batch.n_terms)["loss"].backward()
        hook.remove()
        grads = {n: p.grad.clone() for n, p in trainer.lm.model.named_parameters() if p.grad is not None}
        results[on] = (mlp_calls["mlp"], grads)
    # each forward (the shared prefix, then the rows) runs the layer once, and again in the backward
    assert results[False][0] == 2 and results[True][0] == 4
    assert results[False][1].keys() == results[True][1].keys() and results[True][1]
    for name, grad in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], grad, atol=1e-6, rtol=1e-5)


def test_gradient_checkpointing_keeps_only_layer_inputs_for_the_backward(tmp_path):
    """What the backward keeps, counted (bytes autograd saves, parameters aside): without
    checkpointing every layer's attention and MLP internals; with it, about one hidden state per
    token and layer, plus the logits read. For the main job's first SmolLM2 batch: 1.9 GB against
    0.2 GB kept, 3.6 GB against 2.2 GB peak RSS, at 1.5x the update time (docs/PERFORMANCE.md)."""
    saved = {}
    for on in (False, True):
        cfg = config("game.name=trust_split", f"train.gradient_checkpointing={str(on).lower()}")
        trainer, batch = first_batch(cfg, tmp_path / str(on))
        params = {p.untyped_storage().data_ptr() for p in trainer.lm.model.parameters()}
        kept = {}

        def pack(t, kept=kept, params=params):
            if t.untyped_storage().data_ptr() not in params:
                kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), trainer.main.training() as model:
            trainer.main.micro_batch_loss(model, batch, batch.n_terms)
        saved[on] = sum(kept.values())
    model = trainer.lm.base.config
    reads = len(batch.token_reads) + len(batch.score_reads)
    bound = 4 * ((model.num_hidden_layers + 2) * batch.unique_tokens * model.hidden_size
                 + 4 * reads * model.vocab_size)  # float32 bytes
    assert saved[True] <= bound < saved[False] / 5, (saved, bound)


# --------------------------------------------------------------------------
# The sign of the credit reaches the tokens
# --------------------------------------------------------------------------
def first_move_logprobs(trainer):
    """log pi(<A>), log pi(<B>) of the learner at the first IPD move (the same prompt in every game)."""
    from detente.games import make_game
    from detente.rollout.play import play

    play([make_game("ipd", n_rounds=1)], [(trainer.learner, trainer.learner)], [0])
    return trainer.learner.chats[0][0][0].draws[0].logprobs


@pytest.mark.parametrize(("algorithm", "credited"), [("naive", 1), ("sum_rewards", 0)])
def test_one_update_raises_the_probability_of_the_credited_option(tmp_path, algorithm, credited):
    """One-round IPD against always-cooperate: defecting pays the learner 5 instead of 3 (naive credits
    <B>), cooperating pays both players 6 instead of 5 (sum of rewards credits <A>)."""
    cfg = config("game.params={n_rounds: 1}", "coplayer=allc", f"credit.algorithm={algorithm}",
                 "credit.group_baseline=false", "train.games_per_iteration=16", "train.lr=0.02",
                 "agent.temperature=4.0")  # the tiny model nearly always plays <A> at temperature 1
    trainer = LLMTrainer(cfg, tmp_path, lm=tiny_lm())
    before = first_move_logprobs(trainer)
    assert min(before) > math.log(0.05)  # both moves get played
    trainer.step()
    after = first_move_logprobs(trainer)
    assert after[credited] > before[credited] + 0.01


@pytest.mark.parametrize("algorithm", ["naive", "sum_rewards", "adalign"])
def test_one_update_ascends_the_credit_weighted_log_likelihood(tmp_path, algorithm):
    """For every credit rule: after one step, sum_i C_i (log pi_new - log pi_old) over the batch's terms
    is positive (the update follows the credit's sign), and negative with the credit negated."""
    cfg = config("game.params={n_rounds: 3}", "coplayer=random", f"credit.algorithm={algorithm}",
                 "credit.group_baseline=false", "credit.beta=2.0", "train.games_per_iteration=8",
                 "train.lr=0.01")
    moved = {}
    for sign in (1, -1):
        trainer, batch = first_batch(cfg, tmp_path / str(sign))
        assert float(batch.credit.abs().sum()) > 0
        batch.credit = batch.credit * sign
        trainer.main.update([batch])
        with torch.no_grad(), trainer.lm.active(LEARNER) as model:
            logp, _ = term_logprobs(model, batch, len(trainer.lm.tokenizer), 1.0)
        moved[sign] = float((batch.credit * (logp - batch.logp_old)).sum())
    assert moved[1] > 0 and moved[-1] > 0  # each ascends its own credit ...
    trainer_pos, batch_pos = first_batch(cfg, tmp_path / "check")
    trainer_pos.main.update([batch_pos])
    with torch.no_grad(), trainer_pos.lm.active(LEARNER) as model:
        logp, _ = term_logprobs(model, batch_pos, len(trainer_pos.lm.tokenizer), 1.0)
    assert float((-batch_pos.credit * (logp - batch_pos.logp_old)).sum()) < 0  # ... and descends the other


# --------------------------------------------------------------------------
# Credit layout
# --------------------------------------------------------------------------
def test_round_credit_maps_seats_scales_rewards_and_takes_A2_from_the_coplayers_own_rewards():
    """Two IPD games of 2 rounds, the learner in seat 0 of game 0 and seat 1 of game 1, against a fixed
    co-player (as a buffer checkpoint would be): agent 1's rewards are its own seat's, divided by c,
    and agent 2's are the other seat's, each through the same leave-one-out blocks."""
    from detente.credit import advantage_alignment_credit, advantages
    from detente.games import make_game
    from detente.policies.scripted import make_scripted
    from detente.rollout.play import play

    cfg = config("credit.group_baseline=false", "credit.gamma=0.5", "credit.beta=2.0")
    games = [make_game("ipd", n_rounds=2) for _ in range(2)]
    alld, tft = make_scripted("alld", games[0]), make_scripted("tft", games[0])
    play(games, [(alld, tft), (tft, alld)], [0, 1])  # "learner" = alld, co-player = tft
    rows = [(0, 0), (1, 1)]
    C, mask = round_credit(cfg, games, rows, reward_scale=5.0)
    # alld vs tft: alld gets 5 then 1, tft gets 0 then 1; in both games, from alld's seat
    r1 = torch.tensor([[5.0, 1.0], [5.0, 1.0]], dtype=torch.float64) / 5
    r2 = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64) / 5
    assert games[1].round_rewards == [(0.0, 5.0), (1.0, 1.0)]  # seat 1 is the learner in game 1
    A1, A2 = advantages(r1, 0.5), advantages(r2, 0.5)
    torch.testing.assert_close(C, advantage_alignment_credit(A1, A2, 0.5, 2.0))
    assert bool(mask.all())
    # identical games: every advantage is 0 (leave-one-out), so check a batch where they differ
    games[1] = make_game("ipd", n_rounds=2)
    play([games[1]], [(tft, tft)], [1])  # game 1: both cooperate, 3 and 3 each round
    C, _ = round_credit(cfg, games, rows, reward_scale=5.0)
    r1 = torch.tensor([[5.0, 1.0], [3.0, 3.0]], dtype=torch.float64) / 5
    r2 = torch.tensor([[0.0, 1.0], [3.0, 3.0]], dtype=torch.float64) / 5
    A1, A2 = advantages(r1, 0.5), advantages(r2, 0.5)
    expected = advantage_alignment_credit(A1, A2, 0.5, 2.0)
    torch.testing.assert_close(C, expected)
    assert float(expected.abs().min()) > 0


def test_round_credit_leaves_the_other_seat_of_the_same_game_out_of_the_baseline():
    """Self-play with both seats trained and the whole-batch baseline (the main job's layout): what
    the other seat of a row's own game got must not move the row's advantage, since that return
    depends on the row's own actions (SPEC 3: the mean runs over the other games)."""
    from types import SimpleNamespace

    cfg = config("credit.group_baseline=false", "credit.algorithm=naive")
    rows = [(slot, seat) for slot in range(3) for seat in (0, 1)]

    def credit_with(game0_seat1: float) -> torch.Tensor:
        rewards = [[(3.0, game0_seat1)], [(5.0, 0.0)], [(1.0, 1.0)]]  # per game: (seat 0, seat 1) per round
        games = [SimpleNamespace(round_rewards=r, n_rounds=1) for r in rewards]
        C, _ = round_credit(cfg, games, rows, reward_scale=1.0)
        return C[:, 0]

    # row (game 0, seat 0): 3 - mean(5, 0, 1, 1) = 1.25, whatever game 0's seat 1 got
    assert credit_with(3.0)[0].item() == credit_with(0.0)[0].item() == 1.25
    # the other games' rows still count it: row (game 1, seat 0) is 5 - mean(3, 3, 1, 1) = 3
    assert credit_with(3.0)[2].item() == 3.0


# --------------------------------------------------------------------------
# Opponent buffer: one trained seat per group, a bounded resident set
# --------------------------------------------------------------------------
def test_with_the_buffer_each_group_trains_one_seat_and_the_buffer_gets_share_p_of_the_rows():
    cfg = config("train.games_per_iteration=8", "credit.group_baseline=false", "buffer.enabled=true",
                 "buffer.prob=0.5")
    learner, past = object(), [object(), object(), object()]
    seats, from_buffer, rows = Counter(), 0, 0
    for iteration in range(400):
        seatings = plan(cfg, iteration, learner, None, past)
        for slot, seat in training_rows(seatings):
            seats[seat] += 1
            rows += 1
            coplayer = seatings[slot].players[1 - seat]
            from_buffer += coplayer is not learner
            assert seatings[slot].players[seat] is learner
    assert seats[0] == seats[1] == rows // 2 == 400 * 8 // 2  # one seat per game, alternating
    share = from_buffer / rows
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / (400 * 8))


def test_the_buffer_keeps_at_most_max_size_snapshots_loaded_and_every_one_on_disk(tmp_path):
    cfg = config("train.iterations=5", "buffer.enabled=true", "buffer.every=1", "buffer.max_size=2")
    lm = tiny_lm()
    train_llm(cfg, tmp_path, lm=lm)
    assert lm.adapters == sorted([LEARNER, "past-4", "past-5"])
    on_disk = sorted(p.name for p in (tmp_path / "checkpoints" / "buffer").iterdir())
    assert on_disk == [f"past-{i}" for i in range(1, 6)]
    resumed = LLMTrainer(cfg, tmp_path, lm=tiny_lm())
    resumed.resume()
    assert resumed.buffer.names == ["past-4", "past-5"]


def test_no_policy_keeps_a_kv_cache_after_an_iteration(tmp_path):
    cfg = config("train.iterations=3", "game.name=trust_split", "buffer.enabled=true", "buffer.every=1",
                 "buffer.prob=1.0")
    trainer = LLMTrainer(cfg, tmp_path, lm=tiny_lm())
    seen = []
    for _ in range(3):
        trainer.step()
        policies = [trainer.learner, *trainer.buffer.policies]
        seen.append(sum(len(p.chats) for p in policies))
        assert sum(p.cache_bytes() for p in policies) == 0
    assert seen[-1] > seen[0]  # the buffer's policies played too


# --------------------------------------------------------------------------
# Non-finite numbers
# --------------------------------------------------------------------------
def test_a_nan_weight_stops_sampling_with_an_error_naming_the_policy(tmp_path):
    from detente.errors import NonFiniteError

    trainer = LLMTrainer(config(), tmp_path, lm=tiny_lm())
    weight = next(p for n, p in trainer.lm.model.named_parameters() if f".{LEARNER}." in n and "lora_B" in n)
    with torch.no_grad():
        weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="policy 'learner'"):
        trainer.step()


def test_nonfinite_updates_are_skipped_counted_and_stop_the_run_after_max_nonfinite(tmp_path, monkeypatch):
    import detente.train.adapter as trainer_module
    from detente.errors import TrainingStopped

    real = trainer_module.term_logprobs
    poisoned = {"on": False}

    def term_logprobs(model, batch, vocab, temperature, prefix=None):
        logp, H = real(model, batch, vocab, temperature, prefix)
        return (logp * float("nan"), H) if poisoned["on"] else (logp, H)

    monkeypatch.setattr(trainer_module, "term_logprobs", term_logprobs)
    cfg = config("train.iterations=8", "train.max_nonfinite=3", "train.checkpoint_every=1")

    def poison_after_two(record):
        poisoned["on"] = record.iteration >= 1

    with pytest.raises(TrainingStopped, match=r"iteration 4: .*3 updates in a row.*resume point is iter_4"):
        train_llm(cfg, tmp_path, poison_after_two, lm=tiny_lm())
    metrics = [line.values for line in read_metrics(tmp_path)]
    assert [m["loss/nonfinite_steps"] for m in metrics] == [0, 0, 1, 2]
    assert metrics[2]["loss/policy"] is None and metrics[1]["loss/policy"] is not None
    # the skipped updates never reached the optimizer: the weights after iteration 1 are the last ones
    from safetensors.torch import load_file

    good = load_file(tmp_path / "checkpoints" / "iter_2" / "adapter" / "adapter_model.safetensors")
    last = load_file(tmp_path / "checkpoints" / "iter_4" / "adapter" / "adapter_model.safetensors")
    assert good.keys() == last.keys() and all(torch.equal(good[k], last[k]) for k in good)
    assert all(bool(torch.isfinite(v).all()) for v in last.values())
    trainer = LLMTrainer(cfg, tmp_path, lm=tiny_lm())
    trainer.resume()
    assert trainer.iteration == 4 and trainer.main.nonfinite_in_a_row == 2
    steps = [int(state["step"]) for state in trainer.main.optimizer.state.values()]
    assert steps and set(steps) == {2}  # Adam took the two finite updates only


# --------------------------------------------------------------------------
# Training data that cannot be placed
# --------------------------------------------------------------------------
def test_a_template_that_trims_history_stops_training_with_the_model_and_the_cause(tmp_path):
    from detente.errors import TrainingStopped

    lm = tiny_lm()
    # renders only the last two messages: every new turn changes what the chat starts with
    lm.tokenizer.chat_template = (
        "{% for message in messages[-2:] %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    cfg = config("game.params={n_rounds: 4}", "agent.model=tiny-trimming")
    with pytest.raises(TrainingStopped, match=r"cannot be placed.*model 'tiny-trimming'.*re-tokenised"):
        train_llm(cfg, tmp_path, lm=lm)


def test_truncated_and_wrapped_messages_are_logged(tmp_path):
    record = train_llm(config("game.name=trust_split", "agent.max_message_tokens=3"), tmp_path, lm=tiny_lm())
    values = record.values
    assert values["data/truncated"] > 0 and values["data/wrapped"] > 0 and values["data/template_resets"] == 0
    assert read_metrics(tmp_path)[0].values["data/truncated"] == values["data/truncated"]


def test_micro_batches_fill_a_token_budget_counting_shared_prefixes_once():
    from detente.train.adapter import micro_batches

    rules = list(range(100))
    chats = [rules + [200 + i] * 20 for i in range(5)] + [[7] * 150]
    groups = micro_batches(chats, budget=170)
    # sorted by tokens: the five chats with the rules come first; 100 + 20 + 20 + 20 = 160 fit, a 4th does not
    assert groups == [[0, 1, 2], [3, 4], [5]]
    assert micro_batches(chats, budget=170, share_prefix=False) == [[0], [1], [2], [3], [4], [5]]
    assert micro_batches(chats, budget=10_000) == [[0, 1, 2, 3, 4, 5]]
    # without the last chat all share the rules, forwarded once for the whole batch: a group pays only
    # for its own tokens, 20 per chat
    assert micro_batches(chats[:5], budget=45) == [[0, 1], [2, 3], [4]]
