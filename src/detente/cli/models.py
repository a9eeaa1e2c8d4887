"""``detente models``: the language models detente knows by name, where their weights and cache are."""

from __future__ import annotations

import argparse

from rich.table import Table

from detente.cli.common import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list the language models detente can load and their cache")
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> None:
    from detente.models import INSTALL_HINT, cache_root, list_models

    table = Table(title="language models known by name (any Hugging Face name or local path works too)")
    for column in ("name", "installed", "weights", "cached copy", "description"):
        table.add_column(column, overflow="fold")
    for info in list_models():
        table.add_row(info.name, "yes" if info.installed else f"no: {INSTALL_HINT}",
                      str(info.source or "-"), str(info.cached or "not yet (written on first load)"),
                      info.description)
    console.print(table)
    console.print(f"cache folder: {cache_root()} (set DETENTE_CACHE to move it)")
