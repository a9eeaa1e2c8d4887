"""What every command shares: the console, progress bars, one-line errors, argument parsing helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from detente.errors import ConfigError
from detente.runs import CrossPlayRecord

console = Console(soft_wrap=False) if sys.stdout.isatty() else Console(width=160)
CROSSPLAY_GAMES = 2
"""Games of every cross-play pairing kept as transcripts (``eval --transcripts``, the end of ``train``)."""


class UsageError(Exception):
    """A problem with the command line itself; shown as one line, exit status 2."""


def progress() -> Progress:
    """A progress bar in detente's layout: description, bar, done/total, time left, a status text."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=console, transient=False,
    )


def progress_callback(bar: Progress, description: str) -> Callable[[int, int | None, str], None]:
    """A :data:`detente.progress.OnProgress` that moves one task of ``bar``."""
    task = bar.add_task(description, total=None, status="")

    def on_progress(done: int, total: int | None, status: str) -> None:
        bar.update(task, completed=done, total=total, status=status)

    return on_progress


def resolve_config(name: str) -> Path:
    """A config file path, or the name of a preset shipped with detente (``ipd_tabular_naive``)."""
    from detente.config import preset_path

    path = Path(name)
    return path if path.exists() else preset_path(name)


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``--param key=value`` items as game keyword arguments (values parsed as YAML scalars)."""
    import yaml

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--param {item!r} must look like key=value")
        try:
            params[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"--param {item!r}: cannot parse the value {value!r}") from None
    return params


def agent_names(text: str, option: str = "--agents") -> list[str]:
    """The comma-separated agent names of an option, at least one."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise UsageError(f"{option} needs at least one agent, e.g. {option} tft,alld")
    return names


def add_api_arguments(command: Any) -> None:
    """--endpoints FILE and --no-cache: how ``api:`` agents of this command reach their models."""
    command.add_argument("--endpoints", metavar="FILE", help="YAML file of named API endpoints for "
                         "api:MODEL@NAME agents (name: {base_url: ..., api_key_env: ...}); api:MODEL alone "
                         "uses $OPENAI_BASE_URL and $OPENAI_API_KEY")
    command.add_argument("--no-cache", action="store_true", help="send every API request even if its answer "
                         "is cached on disk")


def load_endpoints(path: str | None) -> dict[str, Any]:
    """The named endpoints of an ``--endpoints`` file (validated like a config's ``endpoints:``)."""
    if path is None:
        return {}
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from detente.config import EndpointConfig, validation_message

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read endpoints file {path}: {error}") from None
    try:
        return TypeAdapter(dict[str, EndpointConfig]).validate_python(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {validation_message(error)}") from None


def make_game_or_fail(game: str, params: dict[str, Any]) -> Any:
    """The game ``game`` with ``params``; a one-line error if there is none or it takes other params."""
    from detente.games import make_game

    try:
        return make_game(game, **params)
    except TypeError as error:
        raise ConfigError(f"game {game!r} does not take these params: {error}") from None
    except ValueError as error:
        raise ConfigError(str(error)) from None


def print_matrix(record: CrossPlayRecord) -> None:
    """The cross-play table and the behaviour table of a tournament."""
    table = Table(title=f"{record.game}: mean reward per round of the row agent "
                  f"({record.games_per_pair} games per pair, ±95% CI)")
    table.add_column("row agent")
    for name in record.agents:
        table.add_column(name, justify="right")
    table.add_column("average", justify="right", style="bold")
    rows = zip(record.agents, record.mean_reward, record.ci95, record.stats.round_robin, strict=True)
    for name, row, ci, average in rows:
        table.add_row(name, *(f"{m:.2f}±{c:.2f}" for m, c in zip(row, ci, strict=True)), f"{average:.2f}")
    console.print(table)
    behaviour = record.stats.behaviour
    if behaviour:
        figures = Table(title="behaviour")
        figures.add_column("agent")
        keys = list(next(iter(behaviour.values())))
        for key in keys:
            figures.add_column(key.removesuffix("_rate").replace("_", " "), justify="right")
        for name, stats in behaviour.items():
            figures.add_row(name, *(fmt(stats.get(k)) for k in keys))
        console.print(figures)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
