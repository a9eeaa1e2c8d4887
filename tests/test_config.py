"""Config files: strict validation with one readable line per mistake."""

import pytest

from detente.config import ConfigError, dump_config, load_config


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
