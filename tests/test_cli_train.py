"""``detente train`` as a user runs it: bad configs stop in one line before any model loads,
--overwrite starts from an empty folder, --resume refuses an edited config."""

from __future__ import annotations

import json

import pytest

from detente.cli import main


def llm(tiny_model_dir, *extra):
    """--set arguments for a two-iteration llm run on the tiny model saved to disk."""
    settings = ["agent.kind=llm", f"agent.model={tiny_model_dir}", "agent.lora_r=4", "agent.lora_alpha=8",
                "train.iterations=2", "train.games_per_iteration=4", "train.lr=0.01", "eval_games=2",
                "game.params={n_rounds: 2}", "credit.group_baseline=false", *extra]
    return [arg for setting in settings for arg in ("--set", setting)]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if anything loads a language model."""
    from detente.policies import llm_backend

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(llm_backend.LoRAModel, "load", classmethod(refuse))


@pytest.mark.parametrize("buffer", ["false", "true"])
def test_unknown_coplayer_stops_in_one_line_naming_the_field_and_the_choices(tmp_path, capsys, buffer):
    code = main(["train", "--set", "coplayer=nosuch", "--set", f"buffer.enabled={buffer}",
                 "--out", str(tmp_path / "r")])
    assert code == 2
    err = one_line_error(capsys)
    assert "coplayer: no scripted strategy 'nosuch'" in err and "alld" in err and "run:DIR[@N]" in err
    assert not (tmp_path / "r").exists()


def test_llm_runs_check_the_coplayer_before_loading_a_model(tmp_path, capsys, no_model_loads):
    missing = tmp_path / "no_such_run"
    assert main(["train", "--set", "agent.kind=llm", "--set", f"coplayer=run:{missing}",
                 "--set", "buffer.enabled=false", "--out", str(tmp_path / "r")]) == 2
    assert f"coplayer: {missing} is not a run folder" in one_line_error(capsys)


def test_a_missing_model_stops_in_one_line(tmp_path, capsys, no_model_loads, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for model, says in ((str(tmp_path / "nowhere"), "no model folder there"),
                        ("no-such-org/no-such-model", "not in the local Hugging Face cache")):
        assert main(["train", "--set", "agent.kind=llm", "--set", f"agent.model={model}",
                     "--out", str(tmp_path / "r")]) == 2
        err = one_line_error(capsys)
        assert err.startswith("error: agent.model: ") and says in err and model in err


def test_a_tabular_run_of_a_game_it_cannot_learn_stops_in_one_line(tmp_path, capsys):
    assert main(["train", "ipd_tabular_naive", "--set", "game.name=split", "--out", str(tmp_path / "r")]) == 2
    err = one_line_error(capsys)
    assert "agent.kind tabular learns 2x2 matrix games" in err and "'split'" in err


def test_opponents_that_cannot_play_the_game_stop_before_training(tmp_path, capsys, no_model_loads):
    assert main(["train", "--set", "agent.kind=llm", "--set", "game.name=split",
                 "--set", "eval_opponents=[alld]", "--out", str(tmp_path / "r")]) == 2
    err = one_line_error(capsys)
    assert "eval_opponents: no scripted strategy 'alld' for game 'split'" in err and "greedy" in err
    # left out, a Split run meets Split's standard field
    assert main(["train", "--set", "agent.kind=llm", "--set", "game.name=split", "--print-config"]) == 0
    assert "eval_opponents:\n- greedy\n- welfare\n- fair" in capsys.readouterr().out


def test_help_config_lists_every_key_with_its_description(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    for key in ("buffer.max_size:", "train.max_nonfinite:", "credit.beta:", "agent.temperature:"):
        assert key in out
    assert "paper code: 0.5 IPD, 1.0 Split, 2.0 Trust-and-Split" in out.replace("Paper", "paper")


def test_overwrite_starts_from_an_empty_folder(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    args = ["train", "cpu_ipd_adalign", *llm(tiny_model_dir, "train.checkpoint_every=1"), "--out", str(out)]
    assert main(args) == 0
    assert (out / "checkpoints" / "iter_1").is_dir()
    stale = out / "checkpoints" / "iter_7"
    stale.mkdir()
    (out / "notes.txt").write_text("of the old run")
    assert main([*args, "--set", "train.iterations=1", "--overwrite"]) == 0
    assert not stale.exists() and not (out / "notes.txt").exists()
    assert sorted(p.name for p in (out / "checkpoints").glob("iter_*")) == ["iter_1"]
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["iteration"] == 1


def test_resume_refuses_an_edited_config_unless_forced(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    args = ["train", "cpu_ipd_adalign", *llm(tiny_model_dir, "train.iterations=1"), "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    config = out / "config.yaml"
    edited = config.read_text().replace("lr: 0.01", "lr: 0.02").replace("iterations: 1", "iterations: 2")
    config.write_text(edited)
    assert main(["train", "--resume", str(out)]) == 2
    err = one_line_error(capsys)
    assert "differs from the config its checkpoint iter_1 was trained with" in err
    assert "train.lr: 0.01 -> 0.02" in err and "--force" in err
    assert main(["train", "--resume", str(out), "--force"]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [0, 1]


def test_tensorboard_writes_every_metric_as_a_scalar_beside_metrics_jsonl(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from detente.runs import read_metrics

    out = tmp_path / "run"
    assert main(["train", "ipd_tabular_adalign", "--set", "train.iterations=4", "--set", "eval_games=2",
                 "--tensorboard", "--out", str(out)]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    lines = read_metrics(out)
    tags = set(events.Tags()["scalars"])
    assert tags == {k for k, v in lines[0].values.items() if v is not None}
    assert "reward/learner" in tags and "behaviour/cooperation_rate" in tags
    learner = events.Scalars("reward/learner")
    assert [e.step for e in learner] == [0, 1, 2, 3]
    assert [e.value for e in learner] == pytest.approx([line.values["reward/learner"] for line in lines])


def test_a_learner_coplayer_trains_beside_the_learner_and_the_run_resumes(tmp_path, tiny_model_dir, capsys):
    """``coplayer: learner:CONFIG`` from the command line: both adapters are checkpointed, the
    cross-play plays the main learner, and --resume continues both."""
    (tmp_path / "second.yaml").write_text(
        f"agent: {{kind: llm, model: {tiny_model_dir}, lora_r: 4, lora_alpha: 8}}\n"
        "game: {params: {n_rounds: 2}}\ncredit: {algorithm: adalign, group_baseline: false}\n")
    (tmp_path / "main.yaml").write_text("extends: cpu_ipd_naive\ncoplayer: learner:second\n")
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "main.yaml"), *llm(tiny_model_dir, "train.iterations=1"),
                 "--out", str(out)]) == 0
    assert (out / "checkpoints" / "iter_1" / "coplayer" / "adapter_config.json").is_file()
    config = out / "config.yaml"
    config.write_text(config.read_text().replace("iterations: 1", "iterations: 2"))
    assert main(["train", "--resume", str(out), "--force"]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [0, 1]
    assert metrics[1]["coplayer/loss/grad_norm"] > 0 and "coplayer/behaviour/cooperation_rate" in metrics[1]
    assert f"run:{out}" in (out / "matrix.json").read_text()


def test_the_final_cross_play_loads_its_model_after_the_trainers_is_gone(tmp_path, tiny_model_dir,
                                                                        monkeypatch):
    """One base model in memory at a time: the cross-play after training loads the trained adapter onto a
    fresh base model, and by then nothing holds the trainer's (no reference cycle waits for the garbage
    collector, which is off here). Counted at every load: the base models still alive."""
    import gc
    import weakref

    from detente.policies import llm_backend

    load = llm_backend.LoRAModel.load.__func__
    loaded: weakref.WeakSet = weakref.WeakSet()
    alive_at_load = []

    def counting_load(cls, *args, **kwargs):
        alive_at_load.append(len(loaded))
        lm = load(cls, *args, **kwargs)
        loaded.add(lm)
        return lm

    monkeypatch.setattr(llm_backend.LoRAModel, "load", classmethod(counting_load))
    out = tmp_path / "run"
    args = ["train", "cpu_ipd_adalign", *llm(tiny_model_dir, "buffer.every=1"), "--out", str(out)]
    enabled = gc.isenabled()
    gc.disable()
    try:
        assert main(args) == 0
    finally:
        if enabled:
            gc.enable()
    assert alive_at_load == [0, 0]  # the trainer's model, then the cross-play's
