"""API models in runs, through the command line: eval and cache, the key nowhere, a dead endpoint.

A real chat-completions server on loopback (tests/fake_openai.py) stands in for the endpoint.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openai")

from detente.cli import main
from fake_openai import status

KEY = "sk-detente-test-9f2c1d7e"


@pytest.fixture
def endpoint(fake_openai, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("DETENTE_CACHE", str(tmp_path / "cache"))
    return fake_openai


def files_holding(folder, text):
    return [p for p in folder.rglob("*") if p.is_file() and text in p.read_text(errors="replace")]


def test_eval_plays_an_api_model_caches_its_answers_and_writes_no_key(endpoint, tmp_path):
    endpoint.replies = lambda messages: "I choose <A>."
    out = tmp_path / "eval"
    args = ["eval", "--agents", "api:cooperator,tft", "--games", "2", "--param", "n_rounds=3",
            "--out", str(out)]
    assert main(args) == 0
    matrix = json.loads((out / "matrix.json").read_text())
    assert matrix["agents"] == ["api:cooperator", "tft"]
    assert matrix["stats"]["behaviour"]["api:cooperator"]["cooperation_rate"] == 1.0
    decisions = 2 * 2 * 3 + 2 * 3  # api vs api: both seats ask; api vs tft: one; 3 rounds, 2 games each
    sent = len(endpoint.requests)  # a repeated question (same chat, same seed) is answered from the cache
    assert 0 < sent <= decisions
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in endpoint.requests)
    assert files_holding(tmp_path, KEY) == []  # the eval folder, the transcripts, the cache
    assert main(args) == 0  # the same evaluation again: every answer from the cache
    assert len(endpoint.requests) == sent
    assert main([*args, "--no-cache"]) == 0
    assert len(endpoint.requests) == sent + decisions


def test_a_dead_endpoint_stops_training_in_one_line_and_keeps_what_was_written(endpoint, tmp_path, capsys,
                                                                               tiny_model_dir):
    endpoints = {"local": {"base_url": endpoint.url, "max_retries": 0, "max_failures": 2}}
    out = tmp_path / "run"
    settings = ["agent.kind=llm", f"agent.model={tiny_model_dir}", "agent.lora_r=4", "agent.lora_alpha=8",
                "coplayer=api:opponent@local", f"endpoints={json.dumps(endpoints)}", "train.iterations=3",
                "train.games_per_iteration=2", "credit.group_baseline=false", "game.params={n_rounds: 2}",
                "eval_games=1", "eval_opponents=[tft]", "train.checkpoint_every=1", "buffer.enabled=false"]
    args = ["train", "cpu_ipd_adalign", *(a for s in settings for a in ("--set", s)), "--out", str(out)]
    # the first iteration's requests (2 games x 2 rounds, one seat each) are answered, then it is down
    arrive = endpoint._arrive
    endpoint._arrive = lambda request: arrive(request) if len(endpoint.requests) < 4 else status(500)
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert "opponent" in err and endpoint.url in err and KEY not in err
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [0]  # the first iteration was finished and kept
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["iteration"] == 1
    assert files_holding(out, KEY) == []
