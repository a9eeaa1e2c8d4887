"""APIPolicy against a real HTTP chat-completions server on loopback (tests/fake_openai.py).

Games, re-asks, the openai client's retries and backoff as they happen on the
wire, the failure policy (unavailable endpoint, request budget), key hygiene,
the disk cache and the concurrency limit. Every wait here is a fraction of a
second: backoff starts at 0.5 s and tests keep ``max_retries`` small.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("openai")

from detente.games import make_game
from detente.games.base import Choice
from detente.policies.api import APIPolicy, Endpoint, EndpointUnavailable, RequestBudgetExceeded
from detente.policies.scripted import make_scripted
from detente.rollout.play import Episode, play, transcript
from fake_openai import FakeOpenAI, delay, garbage, reply, status

KEY_ENV = "DETENTE_TEST_API_KEY"
KEY = "sk-detente-test-7f3a9c1e"
"""A stand-in secret: it must reach the server and nothing else."""

MakePolicy = Callable[..., APIPolicy]


@pytest.fixture
def make_policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePolicy]:
    """``make_policy(server, cache=False, system_prompt=None, **endpoint_fields)``: an APIPolicy for
    model ``fake-model`` on ``server`` (or a base URL) with the test key (timeout 2 s, 2 retries
    unless given)."""
    monkeypatch.setenv(KEY_ENV, KEY)
    made: list[APIPolicy] = []

    def make(server: FakeOpenAI | str, *, cache: object = False, system_prompt: str | None = None,
             **endpoint: object) -> APIPolicy:
        url = server if isinstance(server, str) else server.url
        settings = {"api_key_env": KEY_ENV, "timeout_s": 2.0, "max_retries": 2, **endpoint}
        policy = APIPolicy("fake-model", Endpoint(url, **settings), system_prompt=system_prompt,
                           cache=cache)  # type: ignore[arg-type]
        made.append(policy)
        return policy

    yield make
    for policy in made:
        policy.close()


def tas_player(messages: list[dict[str, str]]) -> str:
    """Says it has paper, keeps 4 coins (with some chatter around the action, as models do)."""
    if "answer with <keep coins=N>" in messages[-1]["content"]:
        return "Keeping four seems fair. <keep coins=4>"
    return "<<message_start>>I have paper.<<message_end>>"


def play_ipd(policy: APIPolicy, n_rounds: int = 1) -> Episode:
    """``policy`` in seat 0 against always-cooperate."""
    game = make_game("ipd", n_rounds=n_rounds)
    return play([game], [(policy, make_scripted("allc", game))], [0])[0]


def own(episode: Episode, seat: int = 0) -> list:
    return [d for d in episode.decisions if d.seat == seat]


# --------------------------------------------------------------------------
# Playing
# --------------------------------------------------------------------------
def test_a_trust_and_split_game_against_greedy(fake_openai, make_policy):
    fake_openai.replies = tas_player
    game = make_game("trust_split", n_rounds=2)
    api = make_policy(fake_openai)
    episode = play([game], [(api, make_scripted("greedy", game))], [0])[0]

    # seed 0: the greedy agent speaks first in round 0; the API agent holds paper against rock
    # (upper hand) in round 0 and paper against scissors (lower hand) in round 1
    assert game.coins == [(4, 10), (4, 10)]
    assert [said[0] for said in game.messages] == ["I have paper.", "I have paper."]
    # claims 4 + 10 > 10: 4*10/14 = 2.857 coins for the API agent, 7.143 for greedy
    rewards = [r for pair in game.round_rewards for r in pair]
    assert rewards == pytest.approx([28.571, 7.143, 2.857, 71.429], abs=1e-3)
    assert episode.invalid == 0

    requests = fake_openai.requests
    assert len(requests) == 4  # round 0: message, proposal; round 1: message, proposal
    first = requests[0]
    assert first.messages[0]["content"].startswith("You are playing a game with another agent")
    assert 'The other agent says: "I will keep all the coins."' in first.messages[0]["content"]
    assert {k: first.body[k] for k in ("model", "temperature", "max_tokens")} == {
        "model": "fake-model", "temperature": 1.0, "max_tokens": 512}
    assert all(isinstance(r.body["seed"], int) for r in requests)
    chat = api.chat(0, 0)
    assert [m["role"] for m in chat] == ["user", "assistant"] * 4
    assert chat[1]["content"] == "<<message_start>>I have paper.<<message_end>>"  # returned as written
    assert requests[-1].messages == chat[:-1]
    assert api.stats["requests"] == 4 and api.stats["failed_requests"] == 0


def test_an_invalid_reply_is_reasked_with_the_parse_error(fake_openai, make_policy):
    fake_openai.script(reply("I cooperate, obviously."), reply("<B>"))
    api = make_policy(fake_openai, system_prompt="Answer briefly.")
    episode = play_ipd(api)

    first, second = fake_openai.requests
    assert first.messages[0] == {"role": "system", "content": "Answer briefly."}
    assert second.messages == [*first.messages, {"role": "assistant", "content": "I cooperate, obviously."},
                               {"role": "user", "content": "Your previous answer was not accepted: no option "
                                "found; write exactly one of <A>, <B>. Answer again."}]
    decision, = own(episode)
    assert decision.valid and decision.tries == 2 and decision.action == Choice(1)
    assert episode.game.returns() == (5.0, 0.0)


def test_a_body_that_is_not_json_is_a_failed_request_and_the_game_asks_again(fake_openai, make_policy):
    fake_openai.script(garbage(), reply("<B>"))
    api = make_policy(fake_openai)
    decision, = own(play_ipd(api))
    assert decision.valid and decision.tries == 2 and decision.action == Choice(1)
    assert api.chat(0, 0)[1] == {"role": "assistant", "content": ""}  # the failed request's empty reply
    assert api.stats["failed_requests"] == 1 and api.stats["requests"] == 2


# --------------------------------------------------------------------------
# Retries (done by the openai client; checked on the wire)
# --------------------------------------------------------------------------
def test_server_errors_are_retried_with_growing_backoff(fake_openai, make_policy):
    fake_openai.script(status(500), status(503))
    fake_openai.replies = lambda messages: "<B>"
    api = make_policy(fake_openai, max_retries=2)
    decision, = own(play_ipd(api))

    assert decision.valid and decision.tries == 1  # the rollout never saw the failures
    assert len(fake_openai.requests) == 3
    at = [r.at for r in fake_openai.requests]
    # backoff 0.5 s then 1 s, each less up to 25 % jitter (plus slack for a busy machine)
    assert 0.375 <= at[1] - at[0] < 1.5
    assert 0.75 <= at[2] - at[1] < 2.0
    assert (api.stats["requests"], api.stats["http_requests"], api.stats["retries"]) == (1, 3, 2)
    assert api.stats["failed_requests"] == 0


def test_retry_after_is_honoured(fake_openai, make_policy):
    fake_openai.script(status(429, retry_after=1.0))
    api = make_policy(fake_openai, max_retries=1)
    decision, = own(play_ipd(api))
    first, second = fake_openai.requests
    assert second.at - first.at >= 1.0  # the client's own first backoff is at most 0.5 s
    assert decision.valid and api.stats["retries"] == 1


def test_a_reply_slower_than_the_timeout_is_abandoned_and_retried(fake_openai, make_policy):
    fake_openai.script(delay(5.0))
    fake_openai.replies = lambda messages: "<B>"
    api = make_policy(fake_openai, timeout_s=0.3, max_retries=1)
    started = time.monotonic()
    decision, = own(play_ipd(api))
    assert time.monotonic() - started < 2.5  # 0.3 s timeout + at most 0.5 s backoff, not the 5 s delay
    assert decision.valid and decision.action == Choice(1)
    assert len(fake_openai.requests) == 2 and api.stats["failed_requests"] == 0


# --------------------------------------------------------------------------
# Failure policy
# --------------------------------------------------------------------------
@pytest.mark.parametrize("failure", [status(500), delay(10.0)], ids=["http-500", "never-answers"])
def test_a_permanently_failing_endpoint_ends_the_run_quickly(fake_openai, make_policy, failure):
    fake_openai.script(*[failure] * 20)
    api = make_policy(fake_openai, timeout_s=0.3, max_retries=1, max_failures=3)
    started = time.monotonic()
    with pytest.raises(EndpointUnavailable) as raised:
        play_ipd(api, n_rounds=10)
    assert time.monotonic() - started < 6.0
    # three requests in a row (the first ask and two re-asks), two tries each, then it stops
    assert len(fake_openai.requests) == 6
    message = str(raised.value)
    assert f"fake-model at {fake_openai.url} is unavailable: 3 requests in a row failed" in message
    assert ("HTTP 500" if failure.kind == "status" else "timed out") in message
    assert "\n" not in message


def test_an_endpoint_nobody_listens_on_is_unavailable(make_policy):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = make_policy(f"http://127.0.0.1:{port}/v1", max_retries=0, max_failures=2)
    with pytest.raises(EndpointUnavailable, match="could not connect"):
        play_ipd(api)
    assert api.stats["failed_requests"] == 2


def test_a_run_that_needs_more_requests_than_its_budget_stops(fake_openai, make_policy):
    api = make_policy(fake_openai, request_budget=3)
    with pytest.raises(RequestBudgetExceeded, match="request budget of 3 HTTP requests"):
        play_ipd(api, n_rounds=5)
    assert len(fake_openai.requests) == 3


def test_retries_count_against_the_request_budget(fake_openai, make_policy):
    fake_openai.script(*[status(500)] * 5)
    api = make_policy(fake_openai, request_budget=2, max_retries=4)
    with pytest.raises(RequestBudgetExceeded):
        play_ipd(api)
    assert len(fake_openai.requests) == 2


# --------------------------------------------------------------------------
# Key hygiene
# --------------------------------------------------------------------------
def test_the_api_key_reaches_the_server_and_nothing_written(fake_openai, make_policy, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake_openai.replies = tas_player
    fake_openai.script(garbage())  # one failure, so a warning is logged too
    game = make_game("trust_split", n_rounds=2)
    api = make_policy(fake_openai, cache=tmp_path / "cache", max_retries=0)
    greedy = make_scripted("greedy", game)
    episode, = play([game], [(api, greedy)], [0])
    line = transcript(episode, (api, greedy), 0).model_dump_json()

    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake_openai.requests)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    # the first request failed (its empty reply is a valid empty message); the three answers are cached
    assert len(written) == 3
    assert not any(KEY in path.read_text() for path in written)
    assert KEY not in line
    assert KEY not in repr(api) + str(api) + repr(vars(api)) + repr(api.endpoint)
    assert "failed (the answer is not a chat completion)" in caplog.text
    assert KEY not in caplog.text

    # a real server's 401 quotes the key it got; the error raised for it must not
    fake_openai.script(status(401, message=f"Incorrect API key provided: {KEY}"))
    strict = make_policy(fake_openai, max_failures=1)
    with pytest.raises(EndpointUnavailable) as raised:
        play_ipd(strict)
    assert "HTTP 401" in str(raised.value) and KEY not in str(raised.value) + caplog.text


def test_the_default_endpoint_comes_from_the_openai_variables(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    api = APIPolicy("fake-model", cache=False)
    try:
        decision, = own(play_ipd(api))
    finally:
        api.close()
    assert api.endpoint == Endpoint(fake_openai.url)  # the trailing "/" dropped
    assert decision.valid and fake_openai.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_missing_key_variable_is_named_in_the_error(fake_openai, monkeypatch):
    monkeypatch.delenv("DETENTE_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="environment variable DETENTE_NO_SUCH_KEY is not set"):
        APIPolicy("fake-model", Endpoint(fake_openai.url, api_key_env="DETENTE_NO_SUCH_KEY"), cache=False)


# --------------------------------------------------------------------------
# Cache and concurrency
# --------------------------------------------------------------------------
def test_the_cache_replays_an_identical_game_without_a_request(fake_openai, make_policy, tmp_path,
                                                               monkeypatch):
    fake_openai.replies = tas_player
    cache = tmp_path / "api"

    def one_game(policy: APIPolicy, stream: str = "s"):
        game = make_game("trust_split", n_rounds=2)
        play([game], [(policy, make_scripted("greedy", game))], [0], streams=[stream])
        return game

    first = make_policy(fake_openai, cache=cache)
    played = one_game(first)
    assert len(fake_openai.requests) == 4

    second = make_policy(fake_openai, cache=cache)
    replayed = one_game(second)
    assert len(fake_openai.requests) == 4  # not one more
    assert (second.stats["cached"], second.stats["requests"]) == (4, 0)
    assert replayed.round_rewards == played.round_rewards
    assert second.chat(0, 0) == first.chat(0, 0)

    one_game(make_policy(fake_openai, cache=cache), stream="other")  # other seeds: other questions
    assert len(fake_openai.requests) == 8

    monkeypatch.setenv("DETENTE_CACHE", str(tmp_path / "home"))
    assert make_policy(fake_openai, cache=True).cache_dir == tmp_path / "home" / "api"


def test_no_more_requests_in_flight_than_the_endpoint_limit(fake_openai, make_policy):
    fake_openai.latency = 0.2
    api = make_policy(fake_openai, max_concurrency=2)
    games = [make_game("ipd", n_rounds=1) for _ in range(3)]
    play(games, [(api, api)] * 3, range(3))  # one step of 6 decisions, all the API policy's
    assert len(fake_openai.requests) == 6
    assert fake_openai.max_in_flight == 2


def test_policies_on_one_endpoint_share_its_limit(fake_openai, make_policy):
    fake_openai.latency = 0.2
    policies = [make_policy(fake_openai, max_concurrency=2) for _ in range(2)]

    def three_games(policy: APIPolicy) -> None:
        games = [make_game("ipd", n_rounds=1) for _ in range(3)]
        play(games, [(policy, make_scripted("allc", games[0]))] * 3, range(3))

    threads = [threading.Thread(target=three_games, args=(p,)) for p in policies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(fake_openai.requests) == 6
    assert fake_openai.max_in_flight == 2


def test_without_the_openai_client_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "detente.policies.api")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'detente\[api\]'"):
        importlib.import_module("detente.policies.api")
