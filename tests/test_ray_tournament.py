"""``detente eval --ray``: the pairings on 2 Ray workers give the local matrix.json and transcripts."""

from __future__ import annotations

import pytest

from detente.cli import main

pytest.importorskip("ray")


def test_eval_on_ray_workers_writes_the_local_matrix_and_transcripts(ray_runtime, tiny_model_dir, tmp_path,
                                                                     capsys):
    """A language model (the tiny one, from disk) and two scripted agents: 6 pairings of 4 games."""
    args = ["eval", "--game", "trust_split", "--param", "n_rounds=2", "--agents",
            f"model:{tiny_model_dir},greedy,truthful", "--games", "4", "--transcripts", "2"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--ray", "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    out = capsys.readouterr().out
    assert "cross-play" in out and "6/6" in out
    for name in ("matrix.json", "transcripts/crossplay.jsonl"):
        local, ray = (tmp_path / "local" / name).read_text(), (tmp_path / "ray" / name).read_text()
        assert local == ray, name
    assert (tmp_path / "ray" / "transcripts" / "crossplay.jsonl").read_text().count("\n") == 6 * 2
