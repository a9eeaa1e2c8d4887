"""``detente serve`` without a browser: the JSON API, its limits, the game store, where it listens."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from detente.cli import build_parser
from detente.cli.serve import make_server
from detente.report import transcript_section
from detente.serve import SessionNotFound, Sessions, create_app
from detente.serve.app import MAX_BODY, MAX_TEXT


@pytest.fixture
def client(tmp_path):
    return TestClient(create_app(Sessions(save_root=tmp_path / "games")))


def start(client: TestClient, **body) -> dict:
    response = client.post("/api/games", json={"game": "ipd", "against": "tft", **body})
    assert response.status_code == 201, response.text
    return response.json()


def answer(client: TestClient, game: dict, text: str) -> dict:
    response = client.post(f"/api/games/{game['id']}/answer", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_game_is_played_through_the_api_and_saved_for_the_report(client, tmp_path):
    game = start(client, n_rounds=2, seed=3)
    assert game["turn"] == {"kind": "choice", "hint": "type A or B", "max_chars": None, "refused": None}
    assert "You are playing a game with another agent" in game["log"][0]["text"]
    refused = answer(client, game, "maybe")
    assert refused["turn"]["refused"] == "no option found; write exactly one of <A>, <B>"
    assert refused["rounds"] == [] and refused["log"] == game["log"]
    after = answer(client, game, "b")
    assert after["rounds"] == [{"round": 1, "you": ["<B>"], "them": ["<A>"], "points": [5.0, 0.0]}]
    assert after["log"][-1]["text"].startswith("The other agent played <A> last round.")
    done = answer(client, game, "A")
    assert done["done"] and done["turn"] is None and done["score"] == [5.0, 5.0]
    folder, = (tmp_path / "games").iterdir()
    assert done["saved"] == str(folder)
    games = transcript_section(folder).files[0]["games"]
    assert games[0]["players"] == ["human", "tft"] and games[0]["seed"] == 3
    assert client.get(f"/api/games/{game['id']}").json() == done
    gone = client.post(f"/api/games/{game['id']}/answer", json={"text": "A"})
    assert gone.status_code == 400 and gone.json() == {"error": "this game is over; start a new one"}


def test_an_oversized_body_is_refused_with_413_and_a_long_answer_with_422(client):
    game = start(client)
    url = f"/api/games/{game['id']}/answer"
    big = json.dumps({"text": "x" * (MAX_BODY + 1)}).encode()
    response = client.post(url, content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over 16384 bytes" in response.json()["error"]
    response = client.post(url, json={"text": "x" * (MAX_TEXT + 1)})
    assert response.status_code == 422 and response.json()["error"].startswith("text: ")
    assert client.get(f"/api/games/{game['id']}").json()["rounds"] == []  # nothing reached the game


def test_a_message_over_the_games_limit_is_refused_by_its_parser_and_explained(client):
    game = start(client, game="trust_split", against="greedy", seed=1, n_rounds=1)
    assert game["turn"]["kind"] == "message"  # each round opens with both messages
    refused = answer(client, game, "y" * 501)
    assert refused["turn"]["refused"] == "message has 501 characters, the limit is 500"


def test_unknown_agents_games_and_sessions_are_clear_errors(client):
    response = client.post("/api/games", json={"game": "ipd", "against": "nosuch"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("no scripted strategy 'nosuch' for game 'ipd'; known: allc")
    response = client.post("/api/games", json={"game": "ipd", "against": "human"})
    assert response.status_code == 400 and "must be an agent" in response.json()["error"]
    response = client.post("/api/games", json={"game": "chess", "against": "tft"})
    assert response.status_code == 400 and "unknown game 'chess'" in response.json()["error"]
    response = client.get("/api/games/not-a-game")
    assert response.status_code == 404 and "no such game" in response.json()["error"]


def test_every_response_forbids_inline_script_and_other_origins(client):
    for url in ("/", "/play/anything", "/static/play.js", "/api/games/x"):
        policy = client.get(url).headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self';" in policy, url
    assert client.get("/static/page.html.j2").status_code == 404


def test_requests_for_another_host_name_are_refused_when_loopback_only():
    app = create_app(Sessions(), allowed_hosts=("127.0.0.1", "localhost"))
    assert TestClient(app, base_url="http://127.0.0.1:8000").get("/").status_code == 200
    assert TestClient(app, base_url="http://attacker.example").get("/").status_code == 400


def test_games_in_one_store_never_mix_and_ids_are_long_random_tokens():
    sessions = Sessions()
    a = sessions.start("ipd", "alld", 0, {"n_rounds": 2})
    b = sessions.start("ipd", "allc", 1, {"n_rounds": 2})
    assert a.id != b.id and min(len(a.id), len(b.id)) >= 32
    sessions.answer(a.id, "A")
    sessions.answer(b.id, "B")
    assert sessions.state(a.id).rounds[0].model_dump() == {"round": 1, "you": ["<A>"], "them": ["<B>"],
                                                           "points": (0.0, 5.0)}
    assert sessions.state(b.id).rounds[0].model_dump() == {"round": 1, "you": ["<B>"], "them": ["<A>"],
                                                           "points": (5.0, 0.0)}


def test_idle_games_are_dropped_and_over_the_limit_the_least_recently_used_goes():
    now = [0.0]
    sessions = Sessions(limit=2, idle_s=60.0, clock=lambda: now[0])
    first = sessions.start("ipd", "tft").id
    now[0] = 10.0
    second = sessions.start("ipd", "tft").id
    now[0] = 20.0
    sessions.state(first)  # first is now the more recently used
    third = sessions.start("ipd", "tft").id
    assert len(sessions) == 2
    with pytest.raises(SessionNotFound):
        sessions.state(second)
    now[0] = 50.0
    sessions.state(third)
    now[0] = 20.0 + 61.0
    with pytest.raises(SessionNotFound, match="idle too long"):
        sessions.state(first)  # 61 s without a request
    assert len(sessions) == 1


def test_detente_serve_listens_on_loopback_only_by_default(capsys):
    server = make_server(build_parser().parse_args(["serve", "--port", "0"]))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        addresses = {sock.getsockname()[0] for s in server.servers for sock in s.sockets}
        assert addresses == {"127.0.0.1"}
    finally:
        server.should_exit = True
        thread.join(10)
    assert "warning" not in capsys.readouterr().out


def test_another_host_is_allowed_with_a_warning(capsys):
    server = make_server(build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "0"]))
    assert server.config.host == "0.0.0.0"
    assert "warning: listening on 0.0.0.0, beyond this machine" in capsys.readouterr().out
