"""``detente bench`` on a tiny random model: the JSON's shape, the naive baseline's calls, the history
timer's shadow answers, one-line errors. Counts and shapes only: no speed is asserted."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from detente.bench.ceiling import body_parameters  # noqa: E402
from detente.bench.naive import ACTION_TOKENS, NaivePolicy  # noqa: E402
from detente.bench.rollout import GAMES, HistoryTimer, detente_policy  # noqa: E402
from detente.cli import main  # noqa: E402
from detente.games import make_game  # noqa: E402
from detente.policies.llm import LLMPolicy  # noqa: E402
from detente.rollout.play import play  # noqa: E402
from tiny_model import tiny_lm  # noqa: E402

ROLLOUT_KEYS = {"game", "concurrent_games", "decisions_per_s", "naive_decisions_per_s", "tokens_per_s"}
HISTORY_KEYS = {"game", "round", "seconds", "naive_seconds"}
UPDATE_KEYS = {"tokens_per_s", "unshared_tokens_per_s", "bare_tokens_per_s", "peak_mib"}
MACHINE_KEYS = {"cpu", "cores", "torch_threads", "torch", "transformers", "device", "dtype", "model",
                "parameters"}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_quick_json_has_every_figure_of_both_games(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_model_dir), "--device", "cpu", "--quick", "--naive-games", "2",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"machine", "rollout", "history", "update", "ceiling"}
    assert set(data["machine"]) >= MACHINE_KEYS and data["machine"]["model"] == str(tiny_model_dir)
    assert data["machine"]["device"] == "cpu" and data["machine"]["dtype"] == "float32"
    for game in GAMES:
        rollout = [r for r in data["rollout"] if r["game"] == game]
        assert [r["concurrent_games"] for r in rollout] == [1, 8, 32]
        assert [r["naive_games"] for r in rollout] == [1, 2, 2]  # --naive-games 2
        assert [r["round"] for r in data["history"] if r["game"] == game] == [1, 20]
    for record in data["rollout"]:
        assert set(record) >= ROLLOUT_KEYS
        assert all(record[key] > 0 for key in ROLLOUT_KEYS - {"game"})
    for record in data["history"]:
        assert set(record) == HISTORY_KEYS and record["seconds"] > 0 and record["naive_seconds"] > 0
    update, ceiling = data["update"], data["ceiling"]
    assert set(update) >= UPDATE_KEYS and all(update[k] > 0 for k in UPDATE_KEYS - {"peak_mib"})
    assert update["peak_mib"] >= 0
    assert ceiling["matmul_gflops"] > 0
    assert 0 < ceiling["fraction"] < 1 and 0 < ceiling["rollout_fraction"] < 1
    printed = capsys.readouterr().out
    assert "trust_split" in printed and "speed-up" in printed and f"wrote {out}" in printed


def counting_generate(lm, calls):
    """Wrap the model's ``generate``: record each call's prompt ids, token limit, and whether it was
    handed a cache."""
    generate = lm.base.generate

    def wrapper(*args, **kwargs):
        calls.append({"ids": kwargs["input_ids"][0].tolist(), "limit": kwargs["max_new_tokens"],
                      "cache": "past_key_values" in kwargs})
        return generate(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("game", GAMES)
def test_naive_calls_generate_once_per_attempt_over_the_full_chat(game, monkeypatch):
    lm = tiny_lm()
    calls = []
    monkeypatch.setattr(lm.base, "generate", counting_generate(lm, calls))
    naive = NaivePolicy(lm, max_message_tokens=6)
    torch.manual_seed(0)
    episodes = play([make_game(game, n_rounds=2) for _ in range(2)], [(naive, naive)] * 2, [0, 1])
    attempts = sum(d.tries for e in episodes for d in e.decisions)
    assert attempts > sum(len(e.decisions) for e in episodes)  # the tiny model's replies get re-asked
    assert len(calls) == naive.stats["calls"] == attempts
    assert not any(call["cache"] for call in calls)
    limits = {6, ACTION_TOKENS} if game == "trust_split" else {ACTION_TOKENS}  # messages get 6 tokens
    assert {call["limit"] for call in calls} == limits
    # every call forwards its chat from the first token: the full template of the messages so far
    prompts = [call["ids"] for call in calls]
    for messages in naive.chats.values():
        for i, message in enumerate(messages):
            if message["role"] == "user":
                text = lm.tokenizer.apply_chat_template(messages[:i + 1], tokenize=False,
                                                        add_generation_prompt=True)
                assert lm.tokenizer(text, add_special_tokens=False)["input_ids"] in prompts


def test_naive_chats_start_as_detente_s():
    lm = tiny_lm()
    naive, ours = NaivePolicy(lm, max_message_tokens=5), LLMPolicy(lm, None)
    for policy in (naive, ours):
        play([make_game("ipd", n_rounds=2)], [(policy, policy)], [3])
    for seat in (0, 1):  # the same rules and first round, as the first user turn
        assert naive.chat(0, seat)[0] == ours.chat(0, seat)[0]


def test_history_timer_shadows_the_reported_rounds_without_changing_the_game():
    lm = tiny_lm()
    alone = detente_policy(lm, 6)
    play([make_game("trust_split", n_rounds=3)], [(alone, alone)], [5])
    naive = NaivePolicy(lm, 6)
    timer = HistoryTimer(detente_policy(lm, 6), naive, {1, 3}, lm.device)
    play([make_game("trust_split", n_rounds=3)], [(timer, timer)], [5])
    assert set(timer.seconds) == {1, 2, 3} and set(timer.naive_seconds) == {1, 3}
    assert timer.policy.chat(0, 0) == alone.chat(0, 0) and timer.policy.chat(0, 1) == alone.chat(0, 1)
    # the naive baseline's last decision (the round-3 proposal) was asked over a copy of detente's chat up to
    # the same user turn (then come its replies and re-asks)
    for seat in (0, 1):
        theirs, detente = naive.chat(0, seat), timer.policy.chat(0, seat)
        assert theirs[:len(detente) - 1] == detente[:-1]


def test_body_parameters_leave_out_both_embeddings():
    model = tiny_lm().base
    embeddings = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    assert body_parameters(model) == sum(p.numel() for p in model.parameters()) - embeddings


def test_an_unknown_model_is_one_line_and_status_2(tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    assert main(["bench", "--model", str(missing), "--quick"]) == 2
    assert str(missing) in one_line_error(capsys)


def test_threads_are_set_before_anything_is_measured(monkeypatch, tmp_path, capsys):
    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    assert main(["bench", "--threads", "3", "--model", str(tmp_path / "none")]) == 2
    assert asked == [3] and "no model folder there" in one_line_error(capsys)
    assert main(["bench", "--threads", "0"]) == 2 and "--threads must be >= 1" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_is_one_line_and_status_2(tiny_model_dir, capsys):
    assert main(["bench", "--model", str(tiny_model_dir), "--device", "cuda"]) == 2
    assert "sees no CUDA GPU" in one_line_error(capsys)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quick_on_cuda_measures_in_bfloat16(tiny_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_model_dir), "--device", "cuda", "--quick", "--json", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert data["machine"]["device"].startswith("cuda") and data["machine"]["dtype"] == "bfloat16"
    assert data["machine"]["gpu"] and data["update"]["peak_mib"] > 0
