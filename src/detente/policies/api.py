"""APIPolicy: a model behind any OpenAI-compatible chat-completions endpoint, playing detente games.

Design: DESIGN.md "policies/" (API, OpenAI-compatible) and SPEC 4 (cross-play
against API models). It talks to the endpoint with the official ``openai``
client (``pip install 'detente[api]'``).

* **The same chat as a local model.** One chat per (game slot, seat), reset
  by :meth:`APIPolicy.begin`: the system prompt if there is one, the game's
  text as user turns (:func:`detente.policies.chat.user_turn`), the policy's
  own replies as assistant turns. A reply is returned exactly as the model
  wrote it: the game parses it, the rollout re-asks with the parse error and
  counts replies that never parse as invalid (``rollout/play.py``).
* **Requests.** One decision is one chat-completions request with
  ``temperature``, ``max_tokens`` and a ``seed`` drawn from ``decision.rng``,
  so a replay of the same games asks the same questions (``max_tokens`` is
  what OpenAI-compatible servers read; OpenAI's own reasoning models refuse
  it). The requests of one
  :meth:`~APIPolicy.act` go out together from a thread pool, at most
  :attr:`Endpoint.max_concurrency` at a time per endpoint: every policy on
  the same base URL (with the same limit) shares one semaphore.
* **Failure policy.** Every wait for the server (connecting, each read) is at
  most :attr:`Endpoint.timeout_s`. The openai client retries timeouts,
  network errors and the statuses 408, 409, 429 and 5xx up to
  :attr:`Endpoint.max_retries` times, waiting 0.5 s doubling up to 8 s, less
  up to 25 % jitter, or what the server's ``Retry-After`` asks when that is
  at most 2 minutes (a server asking for longer is not retried). A request
  that still fails, or whose answer is not a chat completion, gives an empty
  reply (the game re-asks or falls back) and counts in
  ``stats["failed_requests"]``. :attr:`Endpoint.max_failures` failed requests
  in a row raise :class:`EndpointUnavailable`, so a run ends instead of
  playing on with fallbacks; requests of the batch not yet sent are dropped.
  :attr:`Endpoint.request_budget` bounds the HTTP requests the policy sends
  in its lifetime, retries included (counted by an event hook on the
  client's ``httpx2`` client as they leave): the first one over it is not
  sent and raises :class:`RequestBudgetExceeded`. So one request lasts at
  most ``max_retries + 1`` tries and the waits between them.
* **Key hygiene.** The API key is read from the environment variable named
  :attr:`Endpoint.api_key_env` when the client is made and is handed to the
  openai client only. It is no attribute of the policy and appears in no
  repr, chat, transcript, cache file, log line or error message: errors name
  the model, the base URL and what failed (an HTTP status, a timeout), never
  the server's error text, which may quote the key.
* **Cache.** Each answer is stored as ``<cache>/<k[:2]>/<k>.json`` with ``k``
  the sha256 of the canonical JSON of (model, base URL, messages,
  temperature, max_tokens, seed); a request whose ``k`` is stored is
  answered from disk and not sent. Failed requests are not stored. Writes
  are atomic (:func:`detente.atomic.write_atomic`). Default folder
  ``detente.models.cache_root() / "api"``; ``cache=False`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detente.atomic import write_atomic
from detente.errors import ConfigError, DetenteError
from detente.games.base import Seat
from detente.models import cache_root
from detente.policies.base import Decision, Policy
from detente.policies.chat import user_turn

try:
    import openai
    from openai.types.chat import ChatCompletion
except ModuleNotFoundError as error:  # an optional extra
    raise ModuleNotFoundError("APIPolicy needs the openai client: pip install 'detente[api]'") from error

log = logging.getLogger(__name__)

Chat = list[dict[str, str]]
"""Role/content messages, as the chat-completions API takes them."""


class EndpointUnavailable(DetenteError, RuntimeError):
    """An endpoint failed request after request: the run stops instead of playing on with fallbacks."""


class RequestBudgetExceeded(DetenteError, RuntimeError):
    """A policy needed more HTTP requests than its :attr:`Endpoint.request_budget`."""


@dataclass(frozen=True)
class Endpoint:
    """Where an OpenAI-compatible chat-completions API is, which key it takes, how hard to push it."""

    base_url: str
    """Root of the API, e.g. ``https://api.openai.com/v1`` or ``http://localhost:8000/v1`` (a trailing
    ``/`` is dropped)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable that holds the key; the key itself is never stored."""
    max_concurrency: int = 8
    """Requests in flight at once, over every policy on this base URL (>= 1)."""
    timeout_s: float = 60.0
    """Longest wait for the server in one try: to connect, and for each read (> 0)."""
    max_retries: int = 4
    """Tries after the first for a timeout, a network error, 408, 409, 429 or 5xx (>= 0)."""
    request_budget: int | None = None
    """Most HTTP requests one policy may send, retries included; None: no limit."""
    max_failures: int = 3
    """Failed requests in a row (each after its retries) that make the endpoint unavailable (>= 1)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.request_budget is not None and self.request_budget < 1:
            raise ValueError(f"request_budget must be >= 1 or None, got {self.request_budget}")
        if self.max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {self.max_failures}")

    @classmethod
    def from_env(cls, **settings: Any) -> Endpoint:
        """``$OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``) with the key in
        ``$OPENAI_API_KEY``; ``settings`` set the other fields."""
        return cls(os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"), **settings)


_LIMITS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_LIMITS_LOCK = threading.Lock()


def _limit(endpoint: Endpoint) -> threading.BoundedSemaphore:
    """The semaphore shared by every policy on ``endpoint``'s base URL with its concurrency limit."""
    key = (endpoint.base_url, endpoint.max_concurrency)
    with _LIMITS_LOCK:
        return _LIMITS.setdefault(key, threading.BoundedSemaphore(endpoint.max_concurrency))


@dataclass(frozen=True)
class _Ask:
    """One decision's request: the arguments of ``chat.completions.create`` and their cache key."""

    request: dict[str, Any]
    key: str


class APIPolicy(Policy):
    """A model behind an OpenAI-compatible chat-completions endpoint (see the module docstring).

    ``endpoint`` defaults to :meth:`Endpoint.from_env`. ``cache`` is True (the
    default folder), a folder, or False (no cache).
    """

    def __init__(
        self,
        model: str,
        endpoint: Endpoint | None = None,
        *,
        name: str | None = None,
        system_prompt: str | None = None,
        temperature: float = 1.0,
        max_tokens: int = 512,
        cache: bool | str | Path = True,
    ) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.model = model
        self.endpoint = endpoint or Endpoint.from_env()
        self.name = name or f"api:{model}"
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.cache_dir: Path | None = (
            cache_root() / "api" if cache is True else None if cache is False else Path(cache)
        )
        self.chats: list[tuple[Chat, Chat]] = []
        """``chats[slot][seat]``: that seat's chat in game ``slot`` of the current batch."""
        self.stats: Counter[str] = Counter()
        """Counts: decisions, requests (sent), cached (answered from disk), failed_requests (no
        usable answer after the retries), http_requests (tries, as they left), retries."""
        self._failures_in_row = 0
        self._last_failure = ""
        self._lock = threading.Lock()
        self._tries = threading.local()  # .count: HTTP requests of the request this thread sends
        self._limit = _limit(self.endpoint)
        self._client = self._make_client()

    def _make_client(self) -> openai.OpenAI:
        env = self.endpoint.api_key_env
        key = os.environ.get(env)
        if not key:
            raise ConfigError(f"environment variable {env} is not set; it must hold the API key "
                              f"for {self.endpoint.base_url}")
        http = openai.DefaultHttpx2Client(
            timeout=self.endpoint.timeout_s, event_hooks={"request": [self._count_request]}
        )
        return openai.OpenAI(
            base_url=self.endpoint.base_url, api_key=key, timeout=self.endpoint.timeout_s,
            max_retries=self.endpoint.max_retries, http_client=http,
        )

    def close(self) -> None:
        """Close the HTTP connections (the policy cannot send afterwards)."""
        self._client.close()

    # -- Policy protocol ----------------------------------------------------
    def begin(self, n_slots: int) -> None:
        self.chats = [self._new_pair() for _ in range(n_slots)]

    def chat(self, slot: int, seat: Seat) -> Chat | None:
        return self.chats[slot][seat] if slot < len(self.chats) else None

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        chats = [self._chat(d.slot, d.seat) for d in decisions]
        asks = [self._open(chat, d) for chat, d in zip(chats, decisions, strict=True)]
        replies = self._answer(asks)
        for chat, reply in zip(chats, replies, strict=True):
            chat.append({"role": "assistant", "content": reply})
        self.stats["decisions"] += len(decisions)
        return replies

    # -- chats ----------------------------------------------------------------
    def _new_pair(self) -> tuple[Chat, Chat]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return (list(system), list(system))

    def _chat(self, slot: int, seat: Seat) -> Chat:
        while len(self.chats) <= slot:
            self.chats.append(self._new_pair())
        return self.chats[slot][seat]

    def _open(self, chat: Chat, decision: Decision) -> _Ask:
        """Add ``decision``'s user turn to ``chat``; the request that asks for the answer."""
        chat.append({"role": "user", "content": user_turn(decision)})
        request = {
            "model": self.model, "messages": list(chat), "temperature": self.temperature,
            "max_tokens": self.max_tokens, "seed": decision.rng.randrange(2**31),
        }
        canonical = json.dumps({"base_url": self.endpoint.base_url, **request}, sort_keys=True)
        return _Ask(request, hashlib.sha256(canonical.encode()).hexdigest())

    # -- requests ---------------------------------------------------------------
    def _answer(self, asks: list[_Ask]) -> list[str]:
        """One reply per ask, in order: from the cache, else from the endpoint."""
        cached = [self._cached(ask) for ask in asks]
        todo = [ask for ask, reply in zip(asks, cached, strict=True) if reply is None]
        self.stats["cached"] += len(asks) - len(todo)
        fresh = iter(self._send_all(todo))
        return [reply if reply is not None else next(fresh) for reply in cached]

    def _send_all(self, asks: list[_Ask]) -> list[str]:
        """Send every ask at once (within the endpoint's limit); "" for each that failed.

        Raises :class:`RequestBudgetExceeded` or :class:`EndpointUnavailable` once
        the requests in flight are done; the asks not yet sent then are dropped.
        """
        if not asks:
            return []
        stop = threading.Event()
        workers = min(len(asks), self.endpoint.max_concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detente-api") as pool:
            futures = [pool.submit(self._send, ask, stop) for ask in asks]
        replies = [future.result() for future in futures]  # re-raises RequestBudgetExceeded
        if stop.is_set():
            raise EndpointUnavailable(
                f"{self.model} at {self.endpoint.base_url} is unavailable: {self._failures_in_row} "
                f"requests in a row failed (last: {self._last_failure})"
            )
        return replies

    def _send(self, ask: _Ask, stop: threading.Event) -> str:
        """Ask the endpoint (after waiting for a free slot); its reply, or "" when it failed. Sets
        ``stop`` when this failure makes the endpoint unavailable; does nothing once it is set."""
        with self._limit:
            if stop.is_set():
                return ""
            try:
                reply, failure = self._request(ask), None
            except RequestBudgetExceeded:
                stop.set()
                raise
            except (openai.APIError, ValueError) as error:  # ValueError: a body that is not JSON
                reply, failure = "", _describe(error)
        self._settle(ask, reply, failure, stop)
        return reply

    def _request(self, ask: _Ask) -> str:
        """One request, the client's retries included: the reply text, or the error of the last try."""
        self._tries.count = 0
        try:
            return _reply_text(self._client.chat.completions.create(**ask.request))
        finally:
            self._count_try(self._tries.count)

    def _settle(self, ask: _Ask, reply: str, failure: str | None, stop: threading.Event) -> None:
        """Cache a good reply, or count a failure and set ``stop`` at ``max_failures`` in a row."""
        if failure is None:
            with self._lock:
                self._failures_in_row = 0
            self._store(ask, reply)
            return
        log.warning("%s: a request to %s failed (%s)", self.name, self.endpoint.base_url, failure)
        with self._lock:
            self.stats["failed_requests"] += 1
            self._failures_in_row += 1
            self._last_failure = failure
            if self._failures_in_row >= self.endpoint.max_failures:
                stop.set()

    def _count_request(self, request: object) -> None:
        """httpx event hook, run as each HTTP request leaves: count it, or refuse it over the budget."""
        with self._lock:
            budget = self.endpoint.request_budget
            if budget is not None and self.stats["http_requests"] >= budget:
                raise RequestBudgetExceeded(
                    f"{self.name} used up its request budget of {budget} HTTP requests (retries "
                    f"included): model {self.model} at {self.endpoint.base_url}"
                )
            self.stats["http_requests"] += 1
        self._tries.count += 1

    def _count_try(self, tries: int) -> None:
        """Count a request that made ``tries`` HTTP requests (0: refused by the budget before any)."""
        if tries:
            with self._lock:
                self.stats["requests"] += 1
                self.stats["retries"] += tries - 1

    # -- cache ----------------------------------------------------------------
    def _path(self, ask: _Ask) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / ask.key[:2] / f"{ask.key}.json"

    def _cached(self, ask: _Ask) -> str | None:
        path = self._path(ask)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())["reply"]
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable API cache file %s (%s)", path, type(error).__name__)
            return None

    def _store(self, ask: _Ask, reply: str) -> None:
        path = self._path(ask)
        if path is not None:
            write_atomic(path, json.dumps({"model": self.model, "reply": reply}))


def _reply_text(completion: object) -> str:
    """The message text of a chat completion; ``ValueError`` if ``completion`` is not one.

    The client does not validate answers: a JSON body of another shape comes
    back as a half-empty ChatCompletion (or as the parsed JSON itself).
    """
    choices = completion.choices if isinstance(completion, ChatCompletion) else None
    message = getattr(choices[0], "message", None) if choices else None
    content = getattr(message, "content", None)
    if message is None or not isinstance(content, str | None):
        raise ValueError("the answer is not a chat completion")
    return content or ""  # None: a refusal or a tool call, no text


def _describe(error: Exception) -> str:
    """What went wrong, in our words: never the server's error text (it may quote the key)."""
    if isinstance(error, openai.APITimeoutError):
        return "timed out"
    if isinstance(error, openai.APIConnectionError):
        return "could not connect"
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}"
    return "the answer is not a chat completion"
