"""Slow tests on the embedded SmolLM2-135M-Instruct (run with `make test-slow`; minutes each on 2 cores).

Results and timings are recorded in README.md ("LLM results on CPU").
"""

import json
import subprocess
import sys
import time

import pytest

from detente.config import load_config
from detente.runs import read_metrics
from detente.train.llm import train_llm

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def all_threads():
    """Undo the suite's one-thread setting: a real model wants both cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_naive_learner_learns_to_defect_against_always_cooperate(tmp_path):
    """SPEC 4: plain RL turns the agent exploitative.

    Budget: the preset's 5 iterations of 8 games, about 10 minutes on 2 cores.
    """
    config = load_config(_preset("cpu_ipd_naive_vs_allc"))
    train_llm(config, tmp_path)
    metrics = read_metrics(tmp_path)
    first = 1 - metrics[0].values["behaviour/cooperation_rate"]
    last = 1 - metrics[-1].values["behaviour/cooperation_rate"]
    print(f"defection rate: {first:.2f} at iteration 0 -> {last:.2f} at iteration {len(metrics) - 1}")
    assert last >= 0.8
    assert last > first


def test_main_job_finishes_within_20_minutes_and_meets_the_bars(tmp_path):
    """The README main job, as a user runs it: naive and Advantage Alignment on the same seed and budget,
    then the joint cross-play, within 20 minutes; contrast.json meets every bar of issue 11 item 1."""
    out = tmp_path / "contrast"
    began = time.monotonic()
    printed = _cli("train", "--out", str(out), timeout=20 * 60)
    print(printed[-3000:], f"\nwall time {(time.monotonic() - began) / 60:.1f} min")
    contrast = json.loads((out / "contrast.json").read_text())
    assert set(contrast) >= {"naive", "adalign", "n_rounds", "tft_vs_alld", "bars"}
    assert contrast["tft_vs_alld"] == pytest.approx((contrast["n_rounds"] - 1) / contrast["n_rounds"])
    assert len(contrast["bars"]) == 4
    missed = [bar for bar in contrast["bars"] if not bar["met"]]
    assert not missed, missed


def test_trust_and_split_eval_of_two_checkpoints_and_three_scripted_agents(tmp_path):
    """Issue 4: `detente eval` of 2 LLM checkpoints + 3 scripted agents on Trust-and-Split, and its report.

    Two iterations of the cpu_tas_adalign preset give checkpoints iter_1 and iter_2; each of the 15
    pairings plays 2 games of 3 rounds. The report is opened in Chromium: heatmap, behaviour table
    and a cross-play transcript where a checkpoint talks with a scripted agent.
    """
    run, out = tmp_path / "run", tmp_path / "eval"
    began = time.monotonic()
    _cli("train", "cpu_tas_adalign", "--out", str(run), "--set", "train.iterations=2", "--set",
         "eval_games=2")
    trained = time.monotonic()
    agents = [f"run:{run}@1", f"run:{run}@2", "greedy", "truthful", "liar"]
    printed = _cli("eval", "--game", "trust_split", "--param", "n_rounds=3", "--agents", ",".join(agents),
                   "--games", "2", "--out", str(out))
    evaluated = time.monotonic()
    _cli("report", str(out))
    print(printed[-4000:])
    print(f"train {(trained - began) / 60:.1f} min, eval {(evaluated - trained) / 60:.1f} min")
    check_tas_eval(out, agents)


def check_tas_eval(out, agents):
    """The eval folder of the test above: matrix.json, the cross-play transcripts, report.html in Chromium."""
    from browser import ARTIFACTS, BROWSER_ARGS, CHROMIUM, browser_or_skip, loaded

    matrix = json.loads((out / "matrix.json").read_text())
    assert matrix["agents"] == agents and matrix["game"] == "trust_split"
    assert all(len(row) == 5 for row in matrix["mean_reward"])
    behaviour = matrix["stats"]["behaviour"]
    # the liar claims the hand that beats the other's claim: its own hand when it is truly upper
    assert behaviour["truthful"]["honesty_rate"] == 1.0 and behaviour["liar"]["lie_rate"] > 0.5
    assert all(0.0 <= rate <= 1.0 for rate in matrix["stats"]["invalid_rate"])
    lines = [json.loads(line) for line in (out / "transcripts" / "crossplay.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 15
    talk = next(line for line in lines if line["players"] == [agents[0], "greedy"])
    assert talk["chats"]["0"][0]["role"] == "user" and "0" in talk["chats"] and "1" not in talk["chats"]
    assert any(d["raw"].startswith("<<message_start>>") for d in talk["decisions"] if d["seat"] == 0)

    sync_playwright = browser_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((out / "report.html").as_uri())
            assert loaded(page.locator("#heatmap img"))
            assert page.locator("#behaviour tbody tr").count() == 5
            page.select_option("#iteration", label="cross-play (30 games)")
            page.fill("#search", "I will keep all the coins")
            page.locator("#transcripts li button").first.click()
            view = page.locator("#transcripts").inner_text()
            assert "run:" in view and "greedy" in view and "I will keep all the coins." in view
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report_tas_eval.png"), full_page=True)
        finally:
            browser.close()


def _cli(*args, timeout=40 * 60):
    """Run ``detente ARGS`` as a user does; its stdout. Fails the test with stderr on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "detente.cli", *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _preset(name):
    from detente.config import preset_path

    return preset_path(name)
