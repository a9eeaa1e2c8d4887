"""The web app of ``detente serve``: a page to pick a game and an opponent, then play it in the browser.

Routes (JSON in and out, errors as ``{"error": "one line"}``)::

    GET  /                        the page: a new game (page.html.j2, Jinja autoescaped)
    GET  /play/{id}               the same page, showing game ``id`` (play.js reads the id from the URL)
    POST /api/games               {"game", "against", "seat", "n_rounds", "seed"} -> the game's state
    GET  /api/games/{id}          the game's state (:class:`~detente.serve.sessions.GameState`)
    POST /api/games/{id}/answer   {"text"} -> the state; a refused text comes back as ``turn.refused``

The id is a 192-bit random token (:mod:`secrets`): knowing it is what lets a page play its game.
Untrusted text (the opponent's output, the person's own) reaches the page only as JSON that play.js
puts in with ``textContent``; a Content-Security-Policy allows this origin's script and style files
and nothing else, not even inline script. Bodies over :data:`MAX_BODY` bytes are refused with 413,
an answer over :data:`MAX_TEXT` characters with 422 (the game's own limit, e.g. 500 characters for a
Trust-and-Split message, is its parser's: that refusal is explained on the page). JSON requests
must say ``Content-Type: application/json`` (FastAPI's strict check), so another site's page cannot
post to this server without a CORS preflight, which it does not answer; ``allowed_hosts`` refuses
requests addressed to other host names (DNS rebinding).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Literal

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detente.errors import DetenteError, UserError
from detente.games import GAMES, make_game
from detente.policies.scripted import scripted_names
from detente.serve.sessions import GameState, SessionNotFound, Sessions

MAX_BODY = 16 * 1024
"""Bytes a request body may have."""
MAX_TEXT = 2000
"""Characters an answer may have (more than any game's message limit)."""
PAGE = "page.html.j2"
STATIC = {"play.js": "text/javascript", "play.css": "text/css"}
"""The page's files, served from this package at /static/NAME."""
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Sent with every response."""


class NewGame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    game: str = Field(max_length=40, description="a registered game name")
    against: str = Field(min_length=1, max_length=500, description="the opponent's agent name")
    seat: Literal[0, 1] = Field(0, description="the person's seat")
    n_rounds: int | None = Field(None, ge=1, le=100, description="None: the game's default")
    seed: int | None = Field(None, ge=0, lt=2**31, description="None: a random seed")


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TEXT, description="what the person typed")


def create_app(sessions: Sessions | None = None, allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The app, keeping its games in ``sessions`` (a fresh :class:`Sessions` if None); with
    ``allowed_hosts``, requests for any other ``Host`` are refused with 400."""
    store = Sessions() if sessions is None else sessions
    app = FastAPI(title="detente", docs_url=None, redoc_url=None, openapi_url=None)
    page = _page()

    @app.get("/", response_class=HTMLResponse)
    def new_game_page() -> str:
        return page

    @app.get("/play/{session_id}", response_class=HTMLResponse)
    def game_page(session_id: str) -> str:
        return page

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            return _error(404, f"no file {name!r} here")
        text = resources.files("detente.serve").joinpath(name).read_text()
        return Response(text, media_type=STATIC[name])

    @app.post("/api/games", status_code=201)
    def start(body: NewGame) -> GameState:
        params = {} if body.n_rounds is None else {"n_rounds": body.n_rounds}
        return store.start(body.game, body.against, body.seat, params, body.seed)

    @app.get("/api/games/{session_id}")
    def state(session_id: str) -> GameState:
        return store.state(session_id)

    @app.post("/api/games/{session_id}/answer")
    def answer(session_id: str, body: Answer) -> GameState:
        return store.answer(session_id, body.text)

    @app.exception_handler(SessionNotFound)
    def not_found(request: Request, error: SessionNotFound) -> JSONResponse:
        return _error(404, str(error))

    @app.exception_handler(UserError)
    def user_error(request: Request, error: UserError) -> JSONResponse:
        return _error(400, str(error))

    @app.exception_handler(DetenteError)
    def failed(request: Request, error: DetenteError) -> JSONResponse:
        return _error(500, str(error))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where + ': ' if where else ''}{first.get('msg', 'invalid request')}")

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    app.add_middleware(BodyLimit, limit=MAX_BODY)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


def _page() -> str:
    """The page, with every game and its scripted opponents to choose from."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    template = env.from_string(resources.files("detente.serve").joinpath(PAGE).read_text())
    games = [{"name": name, "agents": scripted_names(make_game(name))} for name in GAMES]
    return template.render(games=games, max_text=MAX_TEXT)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=HEADERS)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (declared or sent) gets 413, unread by the app."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _error(413, f"the request body is over {self.limit} bytes")(scope, receive, send)
