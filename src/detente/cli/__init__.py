"""The ``detente`` command: train, eval, play, serve, exploit, report, models, bench (one module per command).

A leaf: nothing in the package imports it. Library code raises its own errors
(:mod:`detente.errors`); here a problem the user can fix (a wrong config key,
an unknown agent, a missing run folder, a bad option) becomes one line on
standard error and exit status 2, and a run that had to stop (non-finite
updates, unusable data, a dead endpoint) one line and status 1. Neither
shows a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console

from detente.cli import bench, exploit, models, play, report, serve, train
from detente.cli import eval as eval_command
from detente.cli.common import UsageError
from detente.errors import DetenteError, UserError

COMMANDS = (train, eval_command, play, serve, exploit, report, models, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detente", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status says how it ended (module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UsageError, UserError) as error:
        _error(error)
        return 2
    except DetenteError as error:
        _error(error)
        return 1
    return 0


def _error(error: Exception) -> None:
    Console(stderr=True, soft_wrap=True).print(f"error: {error}", style="red", markup=False, highlight=False)
