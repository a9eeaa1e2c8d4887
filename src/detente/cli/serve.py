"""``detente serve``: play games in the browser against any agent (the ``serve`` extra: FastAPI, uvicorn).

It listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise, and then warns: the
page has no login, so whoever reaches it can play and make the server load any run folder or model
it can read. Finished games are saved under ``--out`` for ``detente report``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
from pathlib import Path
from typing import Any

from detente.cli.common import UsageError, console
from detente.runs import PLAY_ROOT

LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
"""The host names a loopback server answers to (any other ``Host`` header is refused)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("serve", help="play games in the browser against any agent")
    command.add_argument("--host", default=LOOPBACK,
                         help=f"address to listen on (default {LOOPBACK}: this machine only)")
    command.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    command.add_argument("--out", metavar="DIR", default=str(PLAY_ROOT),
                         help=f"where finished games are saved, one folder each (default {PLAY_ROOT})")
    command.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> None:
    server = make_server(args)
    console.print(f"detente serve: open http://{args.host}:{args.port}/ in a browser (Ctrl-C stops)",
                  markup=False, highlight=False)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops on Ctrl-C, then raises it again
        server.run()
    console.print("stopped")


def make_server(args: argparse.Namespace) -> Any:
    """The uvicorn server of ``args`` (not started); warns when it will listen beyond this machine."""
    try:
        import uvicorn

        from detente.serve import Sessions, create_app
    except ModuleNotFoundError as error:
        if error.name not in ("fastapi", "starlette", "uvicorn", "jinja2"):
            raise
        raise UsageError("detente serve needs FastAPI and uvicorn: pip install 'detente[serve]'") from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    local = is_loopback(args.host)
    if not local:
        console.print(f"warning: listening on {args.host}, beyond this machine: anyone who reaches it can "
                      "play, and make this server load any run folder or model it can read",
                      style="yellow", markup=False, highlight=False)
    hosts = (*LOOPBACK_NAMES, args.host) if local else None
    app = create_app(Sessions(save_root=Path(args.out)), allowed_hosts=hosts)
    return uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                         access_log=False))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine only (127.0.0.0/8, ::1, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
