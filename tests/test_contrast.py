"""Contrast jobs (the main job's shape): config routing, the figures and bars of contrast.json, its
report, and a whole job end to end on the tabular learners (seconds)."""

from __future__ import annotations

import json

import pytest

from detente.cli import main
from detente.config import ContrastConfig, ContrastJob, load_job
from detente.errors import ConfigError
from detente.eval.contrast import contrast_record
from detente.eval.tournament import cross_play
from detente.games import make_game
from detente.policies.scripted import make_scripted
from detente.report import render_report
from detente.runs import (
    MetricsLine,
    read_contrast,
    read_crossplay,
    write_config,
    write_contrast,
    write_crossplay,
    write_metrics,
)


def scripted_record(n_rounds=10):
    game = make_game("ipd", n_rounds=n_rounds)
    names = ["defector", "reciprocator", "alld", "allc", "tft"]
    rules = ["alld", "tft", "alld", "allc", "tft"]
    agents = {name: make_scripted(rule, game) for name, rule in zip(names, rules, strict=True)}
    return cross_play(lambda: make_game("ipd", n_rounds=n_rounds), agents, 4).record


def test_a_reciprocator_meets_every_bar_and_a_defector_the_naive_one():
    record = contrast_record(scripted_record(), {"naive": "defector", "adalign": "reciprocator"}, 10)
    naive, adalign = record.runs["naive"], record.runs["adalign"]
    assert naive["self_play_cooperation"] == 0.0 and naive["reward_self_play"] == 1.0
    assert adalign["self_play_mutual_cooperation"] == 1.0 and adalign["retaliation"] == 1.0
    assert adalign["reward_vs_alld"] == pytest.approx(0.9) == record.tft_vs_alld  # (N - 1) / N
    assert adalign["reward_vs_naive"] == pytest.approx(0.9)
    assert naive["reward_vs_adalign"] == pytest.approx(1.4)
    assert naive["reward_vs_allc"] == 5.0 and adalign["reward_vs_tft"] == 3.0
    assert [(bar.run, bar.figure, bar.met) for bar in record.bars] == [
        ("naive", "self_play_cooperation", True), ("adalign", "self_play_mutual_cooperation", True),
        ("adalign", "retaliation", True), ("adalign", "reward_vs_alld", True)]
    assert record.bars[-1].threshold == pytest.approx(0.95 * 0.9)


def test_swapped_agents_fail_the_bars_they_should():
    record = contrast_record(scripted_record(6), {"naive": "reciprocator", "adalign": "defector"}, 6)
    met = {bar.figure: bar.met for bar in record.bars}
    assert met == {"self_play_cooperation": False, "self_play_mutual_cooperation": False,
                   "retaliation": True, "reward_vs_alld": True}  # alld "retaliates" and ties alld
    assert record.tft_vs_alld == pytest.approx(5 / 6)


def trained_runs(out, labels):
    """A contrast job's folder as training leaves it: its config, and each of ``labels`` with a
    three-iteration metrics.jsonl (cooperation 0.1 for naive, 0.9 for adalign)."""
    presets = {"naive": "ipd_tabular_naive", "adalign": "ipd_tabular_adalign"}
    write_config(out, ContrastConfig(contrast=presets))
    for label in labels:
        rate = {"naive": 0.1, "adalign": 0.9}[label]
        values = {"behaviour/cooperation_rate": rate, "behaviour/mutual_cooperation_rate": rate ** 2}
        write_metrics(out / label, [MetricsLine(iteration=i, values=values) for i in range(3)])


def test_the_report_of_a_contrast_job_shows_both_runs_the_bars_and_the_heatmap(tmp_path):
    trained_runs(tmp_path, ["naive", "adalign"])
    record = scripted_record()  # the cooperator labelled naive, the defector adalign: bars met and not met
    write_crossplay(tmp_path, record, [])
    write_contrast(tmp_path, contrast_record(record, {"naive": "reciprocator", "adalign": "defector"}, 10))
    html = render_report(tmp_path)
    assert 'href="#contrast"' in html
    assert '<figure id="contrast-plot"><img class="plot" alt="cooperation over training of naive, adalign"' \
        in html
    assert ('<thead><tr><th>figure</th><th>naive</th><th>adalign</th></tr></thead>' in html
            and "<tr><td>self_play_cooperation</td><td>1.00</td><td>0.00</td></tr>" in html)
    assert ("<tr><td>naive</td><td>self_play_cooperation</td><td>1.00</td><td>&lt;= 0.20</td>"
            '<td class="not-met">not met</td></tr>') in html
    assert ("<tr><td>adalign</td><td>reward_vs_alld</td><td>1.00</td><td>&gt;= 0.85 (0.95 × tft vs alld)</td>"
            '<td class="met">met</td></tr>') in html
    assert "tft vs alld = 0.90" in html
    assert 'id="heatmap"' in html and 'id="behaviour"' in html  # the joint cross-play, as in any eval folder


def test_the_report_of_a_contrast_job_still_training_shows_what_is_there(tmp_path):
    trained_runs(tmp_path, ["naive"])  # adalign not trained yet, no cross-play yet
    html = render_report(tmp_path)
    assert 'alt="cooperation over training of naive"' in html
    assert "adalign: no adalign/metrics.jsonl yet" in html
    assert "contrast.json is not written yet" in html and 'id="contrast-bars"' not in html
    assert "No matrix.json in this folder" in html and 'id="heatmap"' not in html


def write_job(tmp_path, **extra):
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps({"name": "tab", "contrast": {"naive": "ipd_tabular_naive",
                                                            "adalign": "ipd_tabular_adalign"}, **extra}))
    return path


def test_overrides_go_to_one_run_every_run_or_the_job(tmp_path):
    job = load_job(write_job(tmp_path), ["train.iterations=7", "naive.train.lr=0.5", "eval_games=3"])
    assert isinstance(job, ContrastJob)
    assert [run.train.iterations for run in job.runs.values()] == [7, 7]
    assert job.runs["naive"].train.lr == 0.5 and job.runs["adalign"].train.lr == 0.1
    assert job.config.eval_games == 3
    assert job.crossplay_config().eval_opponents == ["alld", "allc", "tft"]  # the game's standard field


@pytest.mark.parametrize(("extra", "overrides", "says"), [
    ({}, ["adalign.game.name=stag_hunt"], "the runs of a contrast must play the same game"),
    ({"contrast": {"only": "ipd_tabular_naive"}}, [], "at least two runs"),
    ({"contrast": {"bars": "ipd_tabular_naive", "b": "ipd_tabular_adalign"}}, [], "a key of contrast.json"),
    ({"eval_opponents": ["greedy"]}, [], "eval_opponents: no scripted strategy 'greedy' for game 'ipd'"),
    ({"contrast": {"a": "ipd_tabular_naive", "b": "no_such_preset"}}, [], "no preset of that name"),
])
def test_a_bad_contrast_config_is_one_clear_error(tmp_path, extra, overrides, says):
    with pytest.raises(ConfigError, match=says):
        load_job(write_job(tmp_path, **extra), overrides)


def test_a_tabular_contrast_job_end_to_end(tmp_path, capsys):
    out = tmp_path / "job"
    args = ["train", str(write_job(tmp_path, eval_games=2)), "--set", "train.iterations=150",
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "self_play_cooperation" in printed and "naive self_play_cooperation" in printed
    for label in ("naive", "adalign"):
        assert (out / label / "policy.json").is_file() and (out / label / "metrics.jsonl").is_file()
    record = read_contrast(out)
    assert set(record.runs) == {"naive", "adalign"} and record.n_rounds == 10
    assert record.tft_vs_alld == pytest.approx(0.9)
    # the docs' tabular result in the contrast's terms: naive defects, Advantage Alignment cooperates
    assert record.runs["naive"]["self_play_cooperation"] < 0.2
    assert record.runs["adalign"]["self_play_mutual_cooperation"] > 0.6
    on_disk = json.loads((out / "contrast.json").read_text())
    assert {"naive", "adalign", "n_rounds", "tft_vs_alld", "bars"} <= set(on_disk)
    assert set(on_disk["naive"]) >= {"self_play_cooperation", "self_play_mutual_cooperation", "retaliation",
                                     "reward_self_play", "reward_vs_alld", "reward_vs_allc", "reward_vs_tft"}
    trained = [f"run:{out / 'naive'}", f"run:{out / 'adalign'}"]
    assert read_crossplay(out).agents == [*trained, "alld", "allc", "tft"]

    # the folder is taken; --resume runs the job again from its own config and rewrites the contrast
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    (out / "contrast.json").unlink()
    assert main(["train", "--resume", str(out)]) == 0
    assert read_contrast(out).runs == record.runs


def test_print_config_shows_the_job_and_each_run(tmp_path, capsys):
    assert main(["train", str(write_job(tmp_path)), "--set", "train.iterations=9", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("name: tab\ncontrast:") and "# naive\nname: ipd_tabular_naive" in out
    assert out.count("iterations: 9") == 2


def test_the_main_job_is_a_contrast_of_naive_and_advantage_alignment(capsys):
    assert main(["train", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "# naive\n" in out and "# adalign\n" in out
    assert "algorithm: naive" in out and "algorithm: adalign" in out
