"""``detente train``: train an agent from a preset or config file, then cross-play it against its field
(a contrast job, the main job: train each of its runs, then one joint cross-play)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from detente.cli.common import CROSSPLAY_GAMES, UsageError, console, fmt, resolve_config
from detente.cli.eval import run_tournament
from detente.cli.trainer import join_ray, train_with_progress
from detente.config import RunConfig
from detente.runs import CONFIG, MATRIX, METRICS, CrossPlayRecord, write_crossplay

DEFAULT_CONFIG = "cpu_ipd_contrast"


def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train agents from a YAML config (default: the main job)")
    train.add_argument("config", nargs="?", help=f"config file or preset name (default {DEFAULT_CONFIG})")
    train.add_argument("--out", help="run folder (default runs/<name>)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.iterations=50 (repeatable)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder's run "
                       "(the old folder is deleted first, checkpoints included)")
    train.add_argument("--resume", metavar="DIR", help="continue the llm run in DIR after its last "
                       "saved iteration")
    train.add_argument("--force", action="store_true", help="with --resume: resume even though DIR's "
                       "config.yaml differs from the config its checkpoint was trained with")
    train.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars to "
                       "<run>/tensorboard/ (the same as --set train.tensorboard=true)")
    train.add_argument("--ray-address", metavar="ADDR", help="with rollout.backend ray: join the Ray "
                       "cluster at ADDR (default: $RAY_ADDRESS, else a Ray runtime started on this machine)")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.add_argument("--help-config", action="store_true", help="print every config key with its "
                       "type, default and description, and exit")
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> None:
    from detente.agents import preflight
    from detente.atomic import fresh_dir
    from detente.cli.contrast import dump_job, is_contrast_folder, read_job, train_contrast
    from detente.config import ContrastJob, config_help, dump_config, load_job

    if args.help_config:
        console.print(config_help(RunConfig), end="", markup=False, highlight=False)
        return
    if args.force and not args.resume:
        raise UsageError("--force goes with --resume DIR (resume even though DIR/config.yaml was edited)")
    if args.tensorboard and args.resume:
        raise UsageError("--tensorboard is part of a run's config: a resumed run keeps its own setting")
    if args.resume:
        if args.config or args.set or args.out:
            raise UsageError("--resume DIR continues the run in DIR with its own config; "
                             "give no config, --set or --out with it")
        out = Path(args.resume)
        path = out / CONFIG
        if not path.exists():
            raise UsageError(f"{out} is not a run folder: {path} is missing")
        if is_contrast_folder(out):
            train_contrast(read_job(out), out, args)
            return
    else:
        path = resolve_config(args.config or DEFAULT_CONFIG)
    job = load_job(path, [*args.set, *(["train.tensorboard=true"] if args.tensorboard else [])])
    if args.print_config:
        text = dump_job(job) if isinstance(job, ContrastJob) else dump_config(job)
        console.print(text, end="", markup=False)
        return
    if not args.resume:
        out = Path(args.out) if args.out else Path("runs") / (job.config.name if isinstance(job, ContrastJob)
                                                              else job.name)
        if (out / CONFIG).exists() and not args.overwrite:
            raise UsageError(f"{out} already holds a run; pass --overwrite, --resume {out} "
                             "or choose another --out")
    if isinstance(job, ContrastJob):
        train_contrast(job, out, args)
        return
    config = job
    if args.resume and config.agent.kind == "tabular":
        raise UsageError("tabular runs take seconds and keep no resume state: train again instead")
    if not args.resume:
        preflight(config)  # every agent and model the run names, before the old folder goes
        fresh_dir(out)  # a new run starts from an empty folder: nothing of an old one survives
    join_ray(args.ray_address, [config])
    train_with_progress(config, out, "training", resume=bool(args.resume), force=args.force)

    agents = [f"run:{out}", *config.eval_opponents]
    result = run_tournament(config.game.name, config.game.params, agents, config.eval_games, config.seed,
                            transcripts=CROSSPLAY_GAMES, endpoints=config.endpoints,
                            api_cache=config.api_cache)
    write_crossplay(out, result.record, result.transcripts)
    print_summary(result.record, agents[0], out)


def print_summary(record: CrossPlayRecord, agent: str, out: Path) -> None:
    """The trained agent's row of the cross-play and its behaviour figures."""
    i = record.index(agent)
    table = Table(title=f"{agent}: reward per round in cross-play")
    table.add_column("opponent")
    table.add_column("reward / round", justify="right")
    table.add_column("opponent's", justify="right")
    for j, name in enumerate(record.agents):
        mine = f"{record.mean_reward[i][j]:.2f} ± {record.ci95[i][j]:.2f}"
        table.add_row("itself" if j == i else name, mine, f"{record.mean_reward[j][i]:.2f}")
    console.print(table)
    behaviour = record.stats.behaviour.get(agent, {})
    if behaviour:
        console.print("behaviour over all its cross-play games:")
    for key, value in behaviour.items():
        console.print(f"{key}: {fmt(value)}")
    console.print(f"metrics: {out / METRICS}   cross-play: {out / MATRIX}")
