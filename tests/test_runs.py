"""Every run-folder record round-trips through runs.py, and a wrong file fails in one line naming it."""

from __future__ import annotations

import pytest

from detente.config import load_config
from detente.games import make_game
from detente.runs import (
    CheckpointPointer,
    CrossPlayRecord,
    CrossPlayStats,
    DecisionLine,
    MetricsLine,
    RunFileError,
    TabularPolicyFile,
    TranscriptLine,
    append_metrics,
    read_config,
    read_crossplay,
    read_latest,
    read_metrics,
    read_policy,
    read_run_info,
    read_transcripts,
    transcript_files,
    transcript_path,
    write_config,
    write_crossplay,
    write_latest,
    write_metrics,
    write_policy,
    write_run_info,
    write_transcripts,
)


def test_run_info_and_config(tmp_path):
    info = write_run_info(tmp_path, "tabular", make_game("stag_hunt"))
    assert read_run_info(tmp_path) == info
    assert (info.producer, info.game, info.game_version, info.tabular) == ("tabular", "stag_hunt", 1, True)
    config = load_config(None, ["train.iterations=3", "coplayer=tft"])
    write_config(tmp_path, config)
    assert read_config(tmp_path) == config


def test_metrics_lines_append_read_and_keep_their_schema(tmp_path):
    values = {"loss/kl": None, "perf/seconds": 0.1}
    lines = [MetricsLine(iteration=i, values={"reward/learner": 1.5 * i, **values}) for i in range(3)]
    write_metrics(tmp_path, lines[:1])
    for line in lines[1:]:
        append_metrics(tmp_path, line)
    assert read_metrics(tmp_path) == lines
    assert lines[2].without_perf() == {"iteration": 2, "reward/learner": 3.0, "loss/kl": None}
    with pytest.raises(ValueError, match="metric names must start with one of reward/"):
        MetricsLine(iteration=0, values={"reward_mean": 1.0})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"iteration": 3, "reward/lea')  # a kill in the middle of an append
    assert read_metrics(tmp_path, tolerate_torn_tail=True) == lines
    with pytest.raises(RunFileError, match=r"metrics\.jsonl line 4 is not JSON"):
        read_metrics(tmp_path)


def test_checkpoint_pointer(tmp_path):
    assert read_latest(tmp_path) is None
    write_latest(tmp_path, 7)
    assert read_latest(tmp_path) == tmp_path / "checkpoints" / "iter_7"
    assert CheckpointPointer.model_validate_json((tmp_path / "checkpoints" / "latest.json").read_text()) \
        == CheckpointPointer(iteration=7, folder="iter_7")


def test_tabular_policy_file(tmp_path):
    policy = TabularPolicyFile.from_logits([0.0, 50.0, -50.0, 1.0, -1.0], "ipd")
    assert policy.cooperate_prob[:3] == pytest.approx([0.5, 1.0, 0.0])
    write_policy(tmp_path, policy, "coplayer_policy.json")
    assert read_policy(tmp_path, "coplayer_policy.json") == policy
    with pytest.raises(RunFileError, match=r"no policy\.json"):
        read_policy(tmp_path)
    (tmp_path / "policy.json").write_text('{"game": "ipd", "cooperate_prob": [0.5], "logits": [0.0]}')
    with pytest.raises(RunFileError, match=r"policy\.json: cooperate_prob: .*need 5 probabilities"):
        read_policy(tmp_path)


def test_crossplay_and_transcripts(tmp_path):
    record = CrossPlayRecord(
        game="ipd", game_version=1, agents=["tft", "alld"], games_per_pair=2,
        mean_reward=[[3.0, 0.9], [1.4, 1.0]], ci95=[[0.0, 0.0], [0.0, 0.0]],
        stats=CrossPlayStats(welfare=[[6.0, 2.3], [2.3, 2.0]], efficiency=[[1.0, 0.38], [0.38, None]],
                             round_robin=[1.95, 1.2], invalid_rate=[0.0, 0.0],
                             behaviour={"tft": {"cooperation_rate": 0.5, "forgiveness_rate": None}}),
    )
    game = TranscriptLine(slot=0, players=["tft", "alld"], round_rewards=[(0.0, 5.0)],
                          decisions=[DecisionLine(round=0, seat=0, raw="<A>", valid=True)],
                          chats={1: [{"role": "user", "content": "Choose"}]}, seed=4)
    write_crossplay(tmp_path, record, [game])
    assert read_crossplay(tmp_path) == record
    assert read_transcripts(tmp_path / "transcripts" / "crossplay.jsonl") == ([game], 0)
    trained = game.model_copy(update={"iteration": 3, "trained_seats": [1]})
    write_transcripts(transcript_path(tmp_path, 3), [trained, trained])
    assert read_transcripts(transcript_path(tmp_path, 3)) == ([trained, trained], 0)
    assert [p.name for p in transcript_files(tmp_path)] == ["iter_3.jsonl", "crossplay.jsonl"]
    (tmp_path / "matrix.json").write_text('{"agents": []}')
    with pytest.raises(RunFileError, match=r"matrix\.json: game: Field required"):
        read_crossplay(tmp_path)
