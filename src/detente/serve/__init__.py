"""``detente serve``: play a game in the browser against any agent (the ``serve`` extra: FastAPI, uvicorn).

:func:`~detente.serve.app.create_app` builds the app (routes, limits, escaping: :mod:`detente.serve.app`);
:class:`~detente.serve.sessions.Sessions` keeps the games in memory (:mod:`detente.serve.sessions`); each
game is a :class:`detente.rollout.step.Match` advanced one answer at a time.
"""

from detente.serve.app import create_app
from detente.serve.sessions import GameState, SessionNotFound, Sessions

__all__ = ["GameState", "SessionNotFound", "Sessions", "create_app"]
