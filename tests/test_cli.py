"""The command line as a user meets it: tables, files, one-line errors."""

import json

from detente.cli import main


def test_eval_writes_the_documented_matrix(tmp_path, capsys):
    code = main(["eval", "--game", "ipd", "--agents", "tft,alld,allc,grim,wsls", "--games", "20",
                 "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert data["game"] == "ipd"
    assert data["agents"] == ["tft", "alld", "allc", "grim", "wsls"]
    assert data["games_per_pair"] == 20
    assert {"mean_reward", "ci95"} <= set(data)
    average = dict(zip(data["agents"], data["stats"]["round_robin"], strict=True))
    assert average["tft"] > average["alld"] and average["grim"] > average["alld"]
    assert "alld" in capsys.readouterr().out
    lines = (tmp_path / "transcripts" / "crossplay.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 15  # the default 2 games of each of the 15 pairings
    assert json.loads(lines[0])["players"] == ["tft", "tft"]


def test_train_writes_the_run_its_cross_play_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "ipd_tabular_adalign", "--set", "train.iterations=3", "--set", "eval_games=4",
            "--out", str(out)]
    assert main(args) == 0
    assert "reward / round" in capsys.readouterr().out
    matrix = json.loads((out / "matrix.json").read_text())
    assert matrix["agents"] == [f"run:{out}", "alld", "allc", "tft"] and matrix["games_per_pair"] == 4
    lines = [json.loads(line) for line in (out / "transcripts" / "crossplay.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 10  # 2 games of each of the 10 pairings of 4 agents
    assert lines[2]["players"] == [f"run:{out}", "alld"]
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_unknown_agent_is_one_line_and_status_2(capsys):
    assert main(["eval", "--agents", "tft,nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no scripted strategy 'nosuch'") and "\n" not in err


def test_bad_config_value_is_one_line_and_status_2(capsys, tmp_path):
    assert main(["train", "--set", "train.lr=-1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: train.lr: Input should be greater than 0"
    assert not (tmp_path / "r").exists()


def test_play_prints_each_decision_and_the_totals_and_saves_the_game(capsys, tmp_path):
    assert main(["play", "--agents", "alld,tft", "--param", "n_rounds=3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "round 3" in out and "total: alld 7, tft 2" in out
    line = json.loads((tmp_path / "transcripts" / "crossplay.jsonl").read_text())
    assert line["players"] == ["alld", "tft"] and len(line["round_rewards"]) == 3


def test_models_lists_the_embedded_model_and_the_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DETENTE_CACHE", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2" in out and str(tmp_path) in out
