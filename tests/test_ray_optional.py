"""Ray stays optional: the rollout config is checked before anything starts, chunks keep seed groups
whole, and asking for Ray without it installed is one line, exit status 2. No Ray runtime here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from detente.cli import main
from detente.config import load_config
from detente.errors import ConfigError
from detente.train.ray_rollout import chunk_slots
from detente.train.seating import plan

LLM = ["agent.kind=llm", "train.games_per_iteration=16", "credit.group_size=4"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["rollout.workers=2"], "rollout.workers applies to rollout.backend ray"),
    (["rollout.resources={num_gpus: 1}"], "rollout.resources applies to rollout.backend ray"),
    (["rollout.backend=ray", "rollout.chunk_games=6"],
     r"rollout.chunk_games \(6\) must be a multiple of the seed-group size \(4, credit.group_size\)"),
    (["rollout.backend=ray", "agent.kind=tabular"], "rollout.backend ray plays llm games"),
    (["rollout.backend=ray", "rollout.workers=0"], "rollout.workers: Input should be greater than or equal"),
    (["rollout.backend=dask"], "rollout.backend: Input should be 'local' or 'ray'"),
])
def test_the_rollout_section_is_checked_before_anything_starts(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*LLM, *overrides])


def test_without_the_group_baseline_any_chunk_size_fits():
    config = load_config(None, [*LLM, "credit.group_baseline=false", "rollout.backend=ray",
                                "rollout.chunk_games=3"])
    assert config.rollout.chunk_games == 3 and config.rollout.resources.threads == 1


@pytest.mark.parametrize(("chunk_games", "sizes"), [(4, [4, 4, 4, 4]), (8, [8, 8]), (12, [12, 4]),
                                                    (16, [16]), (64, [16])])
def test_chunks_are_consecutive_whole_seed_groups(chunk_games, sizes):
    cfg = load_config(None, LLM)
    seatings = plan(cfg, 0, object(), None, [])
    chunks = chunk_slots(seatings, chunk_games)
    assert [len(c) for c in chunks] == sizes
    assert [slot for c in chunks for slot in c] == list(range(16))
    for chunk in chunks:  # a chunk holds every game of each of its groups
        groups = {seatings[slot].group for slot in chunk}
        assert sum(s.group in groups for s in seatings) == len(chunk)


def test_asking_for_ray_without_it_is_one_line_and_status_2(monkeypatch, capsys, tmp_path, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    args = ["train", "--set", "agent.kind=llm", "--set", f"agent.model={tiny_model_dir}", "--set",
            "rollout.backend=ray", "--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: rollout.backend ray needs Ray, which is not installed here: "
                   "pip install 'detente[ray]'")
    assert not (tmp_path / "run").exists()  # refused before the folder was made
    assert main(["eval", "--agents", "tft,alld", "--games", "2", "--ray"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --ray needs Ray, which is not installed here: "
                                               "pip install 'detente[ray]'")


def test_ray_options_without_ray_are_usage_errors(capsys):
    assert main(["eval", "--agents", "tft,alld", "--workers", "2"]) == 2
    assert "--workers and --ray-address go with --ray" in capsys.readouterr().err
    assert main(["train", "ipd_tabular_naive", "--ray-address", "127.0.0.1:6379"]) == 2
    assert "--ray-address goes with rollout.backend ray" in capsys.readouterr().err


def test_the_default_commands_never_import_ray(tmp_path):
    """With ``ray`` unimportable, the command line, the llm trainer and a local tournament all work."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "import detente.train.llm, detente.eval.tournament\n"
            "from detente.cli import main\n"
            f"sys.exit(main(['eval', '--agents', 'tft,alld', '--games', '2', '--out', {str(tmp_path)!r}]))\n")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "matrix.json").is_file()


def test_a_resume_may_change_the_worker_count_and_nothing_else_of_the_rollout(tmp_path):
    """Checked before any model loads: the worker count is where games run, the chunk size is part of
    the experiment, and a checkpoint written before the rollout section existed meant its defaults."""
    import yaml

    from detente.runs import checkpoint_dir, write_latest
    from detente.train.llm import resume_point

    def checkpoint(config):
        folder = checkpoint_dir(tmp_path, 1)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        write_latest(tmp_path, 1)
        return folder

    ray = [*LLM, "rollout.backend=ray", "rollout.workers=2", "rollout.chunk_games=8"]
    saved = checkpoint(load_config(None, ray).model_dump(mode="json"))
    assert resume_point(tmp_path, load_config(None, [*ray, "rollout.workers=7"])) == saved
    with pytest.raises(ConfigError, match=r"rollout.chunk_games: 8 -> 4; pass --force"):
        resume_point(tmp_path, load_config(None, [*ray, "rollout.chunk_games=4"]))
    older = load_config(None, LLM).model_dump(mode="json")
    del older["rollout"]
    checkpoint(older)
    assert resume_point(tmp_path, load_config(None, LLM)) == saved
