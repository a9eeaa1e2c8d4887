"""A chat-completions server on loopback for tests: real HTTP, scripted answers.

``FakeOpenAI()`` listens on ``http://127.0.0.1:<free port>/v1`` and answers
``POST /v1/chat/completions`` with chat.completion JSON. What it answers:

* the next queued behaviour, if any (``server.script(reply("<A>"), status(500), ...)``):
  :func:`reply` (that text), :func:`status` (an error status, optionally with
  ``Retry-After``), :func:`delay` (wait, then answer as if nothing was queued),
  :func:`garbage` (a 200 whose body is not JSON);
* otherwise ``server.replies(messages)``, a function of the request's messages
  (default: ``"<A>"``), after ``server.latency`` seconds.

Every request is recorded (headers, body, arrival time) in ``server.requests``,
and ``server.max_in_flight`` is the most requests it was ever answering at once.
The ``fake_openai`` fixture (tests/conftest.py) starts one per test.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request."""

    kind: Literal["reply", "status", "delay", "garbage"]
    text: str = ""
    code: int = 200
    retry_after: float | None = None
    seconds: float = 0.0


def reply(text: str) -> Behaviour:
    """Answer with a chat completion whose message is ``text``."""
    return Behaviour("reply", text=text)


def status(code: int, retry_after: float | None = None, message: str = "scripted failure") -> Behaviour:
    """Answer with error status ``code``, an error body saying ``message``, and a ``Retry-After``
    header in seconds if given."""
    return Behaviour("status", text=message, code=code, retry_after=retry_after)


def delay(seconds: float) -> Behaviour:
    """Wait ``seconds`` (say, past the client's timeout), then answer with ``replies(messages)``."""
    return Behaviour("delay", seconds=seconds)


def garbage() -> Behaviour:
    """Answer 200 with a JSON content type and a body that is not JSON."""
    return Behaviour("garbage")


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    headers: dict[str, str]
    """Header names lower-cased."""
    body: dict[str, Any]
    at: float
    """``time.monotonic()`` on arrival."""

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.body["messages"]


class FakeOpenAI:
    """A scriptable chat-completions server in a background thread; a context manager."""

    def __init__(self) -> None:
        self.replies: Callable[[list[dict[str, str]]], str] = lambda messages: "<A>"
        self.latency = 0.0
        self.requests: list[Request] = []
        self.max_in_flight = 0
        self._queue: deque[Behaviour] = deque()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True  # a delayed answer never holds up stop()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order."""
        with self._lock:
            self._queue.extend(behaviours)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- called by the handler threads -------------------------------------
    def _arrive(self, request: Request) -> Behaviour | None:
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return self._queue.popleft() if self._queue else None

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            request = Request({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            behaviour = server._arrive(request)
            try:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self._answer(behaviour, request)
            finally:
                server._leave()

        def _answer(self, behaviour: Behaviour | None, request: Request) -> None:
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            elif behaviour is None or behaviour.kind == "delay":
                time.sleep(behaviour.seconds if behaviour else server.latency)
                self._send(200, _completion(server.replies(request.messages), request.body["model"]))
            elif behaviour.kind == "reply":
                self._send(200, _completion(behaviour.text, request.body["model"]))
            elif behaviour.kind == "status":
                headers = {} if behaviour.retry_after is None else {"Retry-After": str(behaviour.retry_after)}
                error = {"error": {"message": behaviour.text, "type": "fake"}}
                self._send(behaviour.code, error, headers)
            else:
                self._send(200, b"<html>not json</html>")

        def _send(self, code: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the tests read ``server.requests`` instead."""

    return Handler


def _completion(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
