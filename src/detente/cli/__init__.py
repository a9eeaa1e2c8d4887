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
import sys
from collections.abc import Sequence

from rich.console import Console

from detente.cli.allocator import exec_under_tcmalloc
from detente.errors import DetenteError, UserError


def build_parser() -> argparse.ArgumentParser:
    # the command modules import torch (seconds): imported here, a training command started from the
    # command line restarts under tcmalloc (main) before paying for them
    from detente.cli import bench, exploit, models, play, report, serve, train
    from detente.cli import eval as eval_command

    parser = argparse.ArgumentParser(prog="detente", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, eval_command, play, serve, exploit, report, models, bench):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status says how it ended (module docstring). From the command
    line (``argv`` None), a training command first starts again under tcmalloc where it is
    installed (:mod:`detente.cli.allocator`)."""
    if argv is None:
        exec_under_tcmalloc(sys.argv[1:])
    from detente.cli.common import UsageError  # after the restart: it imports torch

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
