"""``detente train`` of a contrast job (the main job): train each run, then one joint cross-play, then
the contrast side by side (``contrast.json``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from detente.cli.common import CROSSPLAY_GAMES, console, fmt
from detente.cli.eval import run_tournament
from detente.config import ContrastConfig, ContrastJob
from detente.runs import (
    CONFIG,
    CONTRAST_FILE,
    MATRIX,
    ContrastRecord,
    read_config,
    read_config_data,
    read_latest,
    write_config,
    write_contrast,
    write_crossplay,
    write_run_info,
)


def is_contrast_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a contrast job (its config.yaml is a contrast config)."""
    return (folder / CONFIG).is_file() and "contrast" in read_config_data(folder / CONFIG)


def read_job(folder: Path) -> ContrastJob:
    """The contrast job in ``folder``: its config and each run's own config.yaml (written at the start)."""
    config = ContrastConfig.model_validate(read_config_data(folder / CONFIG))
    return ContrastJob(config=config, runs={label: read_config(folder / label) for label in config.contrast})


def train_contrast(job: ContrastJob, out: Path, args: argparse.Namespace) -> None:
    """Train every run of ``job`` in ``out/<label>`` (``--resume``: continue each where it stopped),
    cross-play them with the field, write ``matrix.json`` and ``contrast.json`` and print the contrast."""
    from detente.agents import preflight
    from detente.atomic import fresh_dir
    from detente.cli.trainer import join_ray, train_with_progress
    from detente.eval.contrast import contrast_record
    from detente.games import make_game

    first = job.crossplay_config()
    if not args.resume:
        for config in [*job.runs.values(), first]:
            preflight(config)
        fresh_dir(out)
        write_run_info(out, "contrast", make_game(first.game.name, **first.game.params))
        write_config(out, job.config)
        for label, config in job.runs.items():  # each run's config first: a resume finds them all
            write_config(out / label, config)
    names = " vs ".join(job.runs)
    console.print(f"[bold]detente train[/] {job.config.name}: {names} on {first.game.name}, then one "
                  f"cross-play -> {out}", highlight=False)
    join_ray(args.ray_address, list(job.runs.values()))
    for label, config in job.runs.items():
        resume = bool(args.resume) and config.agent.kind == "llm" and read_latest(out / label) is not None
        train_with_progress(config, out / label, label, resume=resume, force=args.force)

    agents = {label: f"run:{out / label}" for label in job.runs}
    opponents = [name for name in first.eval_opponents if name not in agents.values()]
    result = run_tournament(first.game.name, first.game.params, [*agents.values(), *opponents],
                            job.config.eval_games, first.seed, transcripts=CROSSPLAY_GAMES,
                            endpoints=first.endpoints, api_cache=first.api_cache)
    write_crossplay(out, result.record, result.transcripts)
    game = make_game(first.game.name, **first.game.params)
    record = contrast_record(result.record, agents, game.max_rounds)
    write_contrast(out, record)
    print_contrast(record)
    console.print(f"runs: {', '.join(str(out / label) for label in job.runs)}   cross-play: {out / MATRIX}   "
                  f"contrast: {out / CONTRAST_FILE}   report: detente report {out}", highlight=False)


def print_contrast(record: ContrastRecord) -> None:
    """The runs' figures side by side (the report's table), then each bar of the claim, met or not."""
    from detente.report.page import contrast_table

    columns, rows = contrast_table(record)
    table = Table(title=f"contrast ({record.n_rounds} rounds a game; rewards per round)")
    table.add_column(columns[0])
    for label in columns[1:]:
        table.add_column(label, justify="right")
    for row in rows:
        table.add_row(*row)
    if record.tft_vs_alld is not None:
        table.add_row("tft vs alld (the scale)", *([fmt(record.tft_vs_alld)] * (len(columns) - 1)))
    console.print(table)
    for bar in record.bars:
        mark = "[green]met[/]" if bar.met else "[red]not met[/]"
        console.print(f"{bar.run} {bar.figure} = {fmt(bar.value)} {bar.comparison} {bar.threshold:.2f}: "
                      f"{mark}", highlight=False)


def dump_job(job: ContrastJob) -> str:
    """What ``--print-config`` prints for a contrast job: its config, then each run's, resolved."""
    from detente.config import dump_config

    return dump_config(job.config) + "".join(f"---\n# {label}\n{dump_config(config)}"
                                             for label, config in job.runs.items())
