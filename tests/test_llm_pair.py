"""Two live LLM learners in one loop (``coplayer: learner:CONFIG``) on a tiny random model: both adapters
train, each with its own credit rule on its own seats, and a resumed run repeats an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch

from detente.config import load_config
from detente.runs import COPLAYER_CONFIG, read_metrics
from detente.train.llm import COPLAYER_ADAPTER, LEARNER, LLMTrainer, train_llm
from llm_helpers import stop_after
from tiny_model import tiny_lm

SECOND = """\
# the learner co-player: Advantage Alignment with a strong beta and its own learning rate
agent: {kind: llm, lora_r: 2, lora_alpha: 4, max_message_tokens: 6}
game: {name: split, params: {n_rounds: 2}}
credit: {algorithm: adalign, beta: 2.0, group_size: 2}
train: {lr: 0.05}
"""
MAIN = ["agent.kind=llm", "agent.max_message_tokens=6", "game.name=split", "game.params={n_rounds: 2}",
        "credit.algorithm=naive", "credit.group_size=2", "train.lr=0.01", "train.games_per_iteration=4",
        "train.iterations=2"]


@pytest.fixture
def pair_config(tmp_path):
    (tmp_path / "second.yaml").write_text(SECOND)
    main = tmp_path / "main.yaml"
    main.write_text("coplayer: learner:second\n")
    return load_config(main, MAIN)


def adapter_state(lm, name):
    return {k: v.clone() for k, v in lm.adapter_state(name).items()}


def test_both_learners_train_their_own_adapter_with_their_own_credit_rule(tmp_path, pair_config, monkeypatch):
    import detente.train.llm as trainer_module

    calls = []
    real = trainer_module.pair_credit

    def pair_credit(r1, r2, algorithm, **kwargs):
        calls.append((algorithm, kwargs["beta"], r1.clone(), r2.clone()))
        return real(r1, r2, algorithm, **kwargs)

    monkeypatch.setattr(trainer_module, "pair_credit", pair_credit)
    assert pair_config.coplayer == f"learner:{tmp_path / 'second.yaml'}"  # located beside main.yaml
    lm = tiny_lm()
    trainer = LLMTrainer(pair_config, tmp_path / "run", lm=lm)
    assert sorted(lm.adapters) == [COPLAYER_ADAPTER, LEARNER]
    assert lm.model.peft_config[COPLAYER_ADAPTER].r == 2 and lm.model.peft_config[LEARNER].r == 4
    before = {name: adapter_state(lm, name) for name in (LEARNER, COPLAYER_ADAPTER)}
    lines = [trainer.step(), trainer.step()]
    after = {name: adapter_state(lm, name) for name in (LEARNER, COPLAYER_ADAPTER)}
    for name in before:
        assert any(not torch.equal(before[name][k], after[name][k]) for k in before[name]), name

    # each iteration credits the learner (naive, its seats as agent 1) and then the co-player (adalign,
    # beta 2, the other seats as agent 1): the same games seen from the two sides
    assert [(algorithm, beta) for algorithm, beta, _, _ in calls] == [("naive", 0.5), ("adalign", 2.0)] * 2
    for (_, _, r1_main, r2_main), (_, _, r1_second, r2_second) in zip(calls[::2], calls[1::2], strict=True):
        assert torch.equal(r1_main, r2_second) and torch.equal(r2_main, r1_second)
        assert not torch.equal(r1_main, r2_main)

    values = lines[-1].values
    own = {key for key in values if not key.startswith(("reward/", "perf/", "coplayer/"))}
    assert {"loss/policy", "loss/grad_norm", "data/terms"} <= own
    assert {f"coplayer/{key}" for key in own} == {key for key in values if key.startswith("coplayer/")}
    assert values["coplayer/loss/grad_norm"] > 0 and values["coplayer/data/terms"] > 0
    assert any(key.startswith("behaviour/") for key in own)


def test_every_game_seats_both_learners_and_trains_both_seats(tmp_path, pair_config):
    trainer = LLMTrainer(pair_config, tmp_path / "run", lm=tiny_lm())
    trainer.train()
    lines = (tmp_path / "run" / "transcripts" / "iter_0.jsonl").read_text().splitlines()
    games = [json.loads(line) for line in lines]
    assert all(sorted(game["players"]) == [COPLAYER_ADAPTER, LEARNER] for game in games)
    assert all(game["trained_seats"] == [0, 1] for game in games)
    # seed groups of 2 games: the learner in seat 0 of group 0, in seat 1 of group 1
    assert [game["players"][0] for game in games] == [LEARNER] * 2 + [COPLAYER_ADAPTER] * 2


def test_a_resumed_pair_gives_the_adapters_of_an_uninterrupted_run(tmp_path, pair_config):
    straight = train_llm(pair_config, tmp_path / "straight", lm=tiny_lm())
    stop_after(pair_config, tmp_path / "killed", 0, tiny_lm())
    checkpoint = tmp_path / "killed" / "checkpoints" / "iter_1"
    assert (checkpoint / "adapter").is_dir() and (checkpoint / "coplayer").is_dir()
    assert (tmp_path / "killed" / COPLAYER_CONFIG).is_file()
    # the run folder reads on its own: config.yaml names the copy of the second learner's config beside it
    stored = load_config(tmp_path / "killed" / "config.yaml")
    assert stored.coplayer == f"learner:{tmp_path / 'killed' / COPLAYER_CONFIG}"
    lm = tiny_lm()
    resumed = train_llm(stored, tmp_path / "killed", resume=True, lm=lm)
    assert resumed.without_perf() == straight.without_perf()
    assert [line.iteration for line in read_metrics(tmp_path / "killed")] == [0, 1]
    from safetensors.torch import load_file

    for folder in ("adapter", "coplayer"):
        files = [load_file(tmp_path / run / "checkpoints" / "iter_2" / folder / "adapter_model.safetensors")
                 for run in ("straight", "killed")]
        assert files[0].keys() == files[1].keys()
        assert all(torch.equal(files[0][k], files[1][k]) for k in files[0])


def test_resume_refuses_an_edited_second_learner_config(tmp_path, pair_config):
    from detente.errors import ConfigError

    pair = pair_config.model_copy(update={"train": pair_config.train.model_copy(update={"iterations": 1})})
    train_llm(pair, tmp_path / "run", lm=tiny_lm())
    copy = tmp_path / "run" / COPLAYER_CONFIG
    copy.write_text(copy.read_text().replace("beta: 2.0", "beta: 1.0"))
    with pytest.raises(ConfigError, match=r"learner co-player credit.beta: 2.0 -> 1.0.*--force"):
        train_llm(load_config(tmp_path / "run" / "config.yaml"), tmp_path / "run", resume=True, lm=tiny_lm())
