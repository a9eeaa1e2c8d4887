"""Cross-play tournaments and behaviour statistics on the scripted IPD zoo."""

import math

import pytest

from detente.eval.tournament import cross_play
from detente.games import make_game
from detente.policies.scripted import make_scripted

ZOO = ["tft", "alld", "allc", "grim", "wsls"]


@pytest.fixture(scope="module")
def result():
    """The zoo's tournament, as matrix.json records it."""
    game = make_game("ipd")
    return cross_play(lambda: make_game("ipd"), {n: make_scripted(n, game) for n in ZOO}, 20).record


def test_cells_are_the_row_agents_per_round_reward(result):
    i = {name: k for k, name in enumerate(ZOO)}
    mean = result.mean_reward
    assert mean[i["alld"]][i["tft"]] == pytest.approx(1.4)  # 14 points in 10 rounds
    assert mean[i["tft"]][i["alld"]] == pytest.approx(0.9)  # 9 points in 10 rounds
    assert mean[i["alld"]][i["allc"]] == pytest.approx(5.0)
    assert mean[i["allc"]][i["alld"]] == pytest.approx(0.0)
    assert mean[i["tft"]][i["tft"]] == pytest.approx(3.0)
    assert result.stats.welfare[i["alld"]][i["tft"]] == pytest.approx(2.3)


def test_reciprocators_beat_always_defect_in_the_round_robin(result):
    average = dict(zip(ZOO, result.stats.round_robin, strict=True))
    assert average["tft"] > average["alld"]
    assert average["grim"] > average["alld"]


def test_deterministic_pairings_have_zero_width_intervals_random_ones_do_not():
    game = make_game("ipd")
    agents = {"tft": make_scripted("tft", game), "random": make_scripted("random", game)}
    result = cross_play(lambda: make_game("ipd"), agents, 50).record
    assert result.ci95[0][0] == 0.0
    assert result.ci95[1][1] > 0.0
    assert 0.0 < result.mean_reward[1][1] < 5.0


def test_behaviour_rates(result):
    assert result.stats.behaviour["tft"]["retaliation_rate"] == 1.0
    assert result.stats.behaviour["allc"]["cooperation_rate"] == 1.0
    assert result.stats.behaviour["allc"]["retaliation_rate"] == 0.0
    assert result.stats.behaviour["alld"]["cooperation_rate"] == 0.0
    # tit-for-tat's partners in this zoo never return to C after a D: no forgiveness data
    assert result.stats.behaviour["tft"]["forgiveness_rate"] is None


def test_self_play_and_versus_others_split_each_agents_games(result):
    self_play, others = result.stats.self_play, result.stats.versus_others
    # tit-for-tat against itself cooperates throughout; against the zoo alld drags it down
    assert self_play["tft"]["mutual_cooperation_rate"] == 1.0
    assert others["tft"]["cooperation_rate"] < 1.0
    assert others["tft"]["retaliation_rate"] == 1.0
    assert self_play["alld"]["cooperation_rate"] == 0.0
    # grim against itself never sees a defection: nothing to retaliate against
    assert self_play["grim"]["retaliation_rate"] is None
    # all games = self-play + the rest: tft sits in both seats of its 20 self-play games (40 seat-games)
    # and in one seat of each of its 80 games against the other four
    total = result.stats.behaviour["tft"]["cooperation_rate"]
    assert total == pytest.approx((40 * self_play["tft"]["cooperation_rate"]
                                   + 80 * others["tft"]["cooperation_rate"]) / 120)


def test_efficiency_is_realised_over_best_possible(result):
    # mutual cooperation gives 6 of a best possible 6 per round (3+3 beats 5+0)
    assert result.stats.efficiency[0][0] == pytest.approx(1.0)
    assert result.stats.efficiency[1][1] == pytest.approx(2 / 6)
    assert not any(x is None or math.isnan(x) for row in result.stats.efficiency for x in row)


def test_json_shape_and_round_trip(result, tmp_path):
    from detente.runs import read_crossplay, write_crossplay

    data = result.model_dump()
    assert set(data) == {"game", "game_version", "agents", "mean_reward", "ci95", "games_per_pair", "stats"}
    assert data["game"] == "ipd" and data["game_version"] == 1
    n = len(ZOO)
    assert data["agents"] == ZOO and data["games_per_pair"] == 20
    assert len(data["mean_reward"]) == n and all(len(row) == n for row in data["mean_reward"])
    assert len(data["ci95"]) == n and all(len(row) == n for row in data["ci95"])
    write_crossplay(tmp_path, result, [])
    assert read_crossplay(tmp_path) == result


def test_first_games_of_every_pairing_are_kept_as_transcripts():
    game = make_game("ipd", n_rounds=3)
    agents = {n: make_scripted(n, game) for n in ("tft", "alld")}
    result = cross_play(lambda: make_game("ipd", n_rounds=3), agents, 4, seed=7, transcripts=2)
    # pairs (tft, tft), (tft, alld), (alld, alld); game k seats the pair's first agent in seat k mod 2
    assert [line.players for line in result.transcripts] == [
        ["tft", "tft"], ["tft", "tft"], ["tft", "alld"], ["alld", "tft"], ["alld", "alld"], ["alld", "alld"]]
    assert [line.seed for line in result.transcripts] == [7, 8] * 3
    tft_vs_alld = result.transcripts[2]
    assert [list(r) for r in tft_vs_alld.round_rewards] == [[0, 5], [1, 1], [1, 1]]
    assert [(d.round, d.seat, d.raw) for d in tft_vs_alld.decisions[:2]] == [(0, 0, "<A>"), (0, 1, "<B>")]
    assert tft_vs_alld.chats == {}  # scripted players keep no chat
    assert "transcripts" not in result.record.model_dump()
