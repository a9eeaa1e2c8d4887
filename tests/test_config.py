"""Config files: strict validation with one readable line per mistake."""

from importlib import resources
from pathlib import Path

import pytest

from detente.config import ConfigError, ContrastJob, dump_config, load_config, load_job, preset_path


def test_defaults_validate_and_round_trip(tmp_path):
    config = load_config(None)
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_overrides_are_typed_and_nested():
    config = load_config(None, ["train.iterations=7", "credit.algorithm=naive", "game.params={n_rounds: 4}"])
    assert config.train.iterations == 7
    assert config.credit.algorithm == "naive"
    assert config.game.params == {"n_rounds": 4}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("bogus=1", "bogus: Extra inputs are not permitted"),
        ("train.iterations=many", "train.iterations: Input should be a valid integer"),
        ("credit.algorithm=greedy", "credit.algorithm: Input should be 'naive', 'sum_rewards' or 'adalign'"),
        ("credit.group_size=1", "credit.group_size: Input should be greater than or equal to 2"),
        ("game.name=chess", "unknown game 'chess'"),
        ("game.params={n_rounds: 0}", "n_rounds must be >= 1"),
        ("train.games_per_iteration=10", "must be divisible by credit.group_size (8)"),
        ("novalue", "must look like key.sub=value"),
    ],
)
def test_mistakes_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(None, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(path)


def test_learning_rate_default_follows_the_agent_kind():
    assert load_config(None).train.lr == 0.1
    assert load_config(None, ["agent.kind=llm"]).train.lr == 3e-6
    assert load_config(None, ["agent.kind=llm", "train.lr=0.001"]).train.lr == 0.001


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["buffer.enabled=true", "coplayer=alld", "agent.kind=llm"], "buffer.enabled needs coplayer 'self'"),
        (["train.epochs=2"], "llm options; the tabular learner does not use them"),
    ],
)
def test_cross_field_rules(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert message in str(info.value)


def test_extends_merges_sections_and_rejects_cycles(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\ntrain: {iterations: 5, lr: 0.5}\ngame: {params: {n_rounds: 3}}\n")
    (tmp_path / "child.yaml").write_text("extends: base\nname: child\ntrain: {iterations: 9}\n")
    config = load_config(tmp_path / "child.yaml")
    assert (config.name, config.train.iterations, config.train.lr) == ("child", 9, 0.5)
    assert config.game.params == {"n_rounds": 3}
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "loop.yaml")


def test_a_preset_can_extend_a_shipped_preset(tmp_path):
    (tmp_path / "mine.yaml").write_text("extends: ipd_tabular_naive\ntrain: {iterations: 3}\n")
    config = load_config(tmp_path / "mine.yaml")
    assert config.credit.algorithm == "naive" and config.train.iterations == 3


# --------------------------------------------------------------------------
# A learner co-player: coplayer: learner:CONFIG
# --------------------------------------------------------------------------
def test_a_learner_coplayer_is_located_beside_the_config_or_as_a_preset(tmp_path):
    from detente.config import coplayer_learner

    (tmp_path / "mine.yaml").write_text("credit: {algorithm: sum_rewards}\n")
    (tmp_path / "main.yaml").write_text("coplayer: learner:mine\n")
    config = load_config(tmp_path / "main.yaml")
    assert config.coplayer == f"learner:{tmp_path / 'mine.yaml'}"  # the same file from any folder
    assert coplayer_learner(config).credit.algorithm == "sum_rewards"
    preset = load_config(None, ["coplayer=learner:ipd_tabular_adalign", "credit.group_baseline=false"])
    assert preset.coplayer == "learner:ipd_tabular_adalign"
    assert coplayer_learner(preset).credit.algorithm == "adalign"
    assert coplayer_learner(load_config(None)) is None


@pytest.mark.parametrize(
    ("second", "overrides", "message"),
    [
        ("game: {name: stag_hunt}\n", [], "it plays stag_hunt {} and the main learner ipd {}; both learners "
         "must play the same game"),
        ("agent: {kind: llm}\n", [], "its agent.kind is llm and the main learner's tabular; both learners "
         "must be of the same kind"),
        ("agent: {kind: llm, model: other}\n", ["agent.kind=llm"], "its agent.model is 'other' and the main "
         "learner's 'smollm2'; both adapters sit on one base model"),
        ("coplayer: learner:second\n", [], "names no learner of its own"),
        ("credit: {group_size: 3}\ntrain: {games_per_iteration: 129}\n", [],
         "credit.group_size (3) must divide the main learner's train.games_per_iteration (128)"),
        ("{}\n", ["agent.kind=llm", "buffer.enabled=true"], "buffer.enabled needs coplayer 'self'"),
        ("agent: {kind: llm}\n", ["agent.kind=llm", "rollout.backend=ray"],
         "rollout.backend ray does not train a learner co-player"),
        (None, [], "coplayer 'learner:second': no config file 'second' and no preset of that name"),
    ],
)
def test_a_learner_coplayer_that_does_not_fit_stops_in_one_line(tmp_path, second, overrides, message):
    if second is not None:
        (tmp_path / "second.yaml").write_text(second)
    (tmp_path / "main.yaml").write_text("coplayer: learner:second\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "main.yaml", overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


SHIPPED = sorted(Path(str(resources.files("detente") / "configs")).glob("*.yaml"))
BASES = {"paper_llm"}
"""Presets that only hold shared settings for others to extend (no ``name`` of their own)."""


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_every_shipped_preset_loads_and_runs_under_its_file_name(path):
    job = load_job(path)
    if isinstance(job, ContrastJob):
        assert all(preset_path(run.name).exists() for run in job.runs.values())
    elif path.stem not in BASES:
        assert job.name == path.stem


def test_naming_another_game_drops_the_params_written_for_the_old_one(tmp_path):
    ipd = tmp_path / "ipd.yaml"
    ipd.write_text("agent: {kind: llm}\ngame: {name: ipd, params: {n_rounds: 4, recap: true}}\n")
    split = load_config(ipd, ["game.name=split"])
    assert (split.game.name, split.game.params) == ("split", {})
    # params given beside the new name hold, in either order
    rounds = "game.params.n_rounds=3"
    for overrides in (["game.name=split", rounds], [rounds, "game.name=split"]):
        assert load_config(ipd, overrides).game.params == {"n_rounds": 3}
    # the same game keeps its params; an override only adds to them
    assert load_config(ipd, ["game.name=ipd"]).game.params == {"n_rounds": 4, "recap": True}
    assert load_config(ipd, ["game.params.n_rounds=2"]).game.params == {"n_rounds": 2, "recap": True}
    # a mapping override replaces the section it names, as before
    assert load_config(ipd, ["game.params={n_rounds: 2}"]).game.params == {"n_rounds": 2}
    with pytest.raises(ConfigError, match="n_rounds is not a section"):
        load_config(ipd, ["game.params.n_rounds.x=1"])
    # a params key the new game does not take still stops, when given for it
    with pytest.raises(ConfigError, match="game 'split' does not take these params"):
        load_config(ipd, ["game.name=split", "game.params.recap=true"])


def test_a_file_that_extends_another_game_starts_from_its_defaults(tmp_path):
    (tmp_path / "ipd.yaml").write_text("agent: {kind: llm}\ngame: {name: ipd, params: {recap: true}}\n"
                                       "train: {iterations: 3}\n")
    (tmp_path / "split.yaml").write_text("extends: ipd.yaml\ngame: {name: split}\n")
    config = load_config(tmp_path / "split.yaml")
    assert (config.game.name, config.game.params, config.train.iterations) == ("split", {}, 3)
    # the default game counts as named: params written for it are dropped by a move to another
    (tmp_path / "bare.yaml").write_text("game: {params: {recap: true}}\n")
    assert load_config(tmp_path / "bare.yaml", ["game.name=stag_hunt"]).game.params == {}
