"""The ``detente`` command: train, eval, play, exploit, report, models.

Errors a user can fix (a wrong config key, an unknown agent, a missing run
folder) print one line and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from detente.errors import ConfigError, DetenteError
from detente.runs import CONFIG, CROSSPLAY_TRANSCRIPTS, MATRIX, METRICS, fresh_dir, write_atomic

DEFAULT_CONFIG = "cpu_ipd_adalign"
CROSSPLAY_GAMES = 2
"""Games of every cross-play pairing kept as transcripts (``eval --transcripts``, the end of ``train``)."""
console = Console(soft_wrap=False) if sys.stdout.isatty() else Console(width=160)


class UsageError(Exception):
    """A problem on the user's side; shown as one line."""


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> None:
    from detente.config import ConfigError, dump_config, load_config

    if args.help_config:
        from detente.config import RunConfig, config_help

        console.print(config_help(RunConfig), end="", markup=False, highlight=False)
        return
    if args.force and not args.resume:
        raise UsageError("--force goes with --resume DIR (resume even though DIR/config.yaml was edited)")
    if args.resume:
        if args.config or args.set or args.out:
            raise UsageError("--resume DIR continues the run in DIR with its own config; "
                             "give no config, --set or --out with it")
        out = Path(args.resume)
        path = out / CONFIG
        if not path.exists():
            raise UsageError(f"{out} is not a run folder: {path} is missing")
    else:
        path = resolve_config(args.config or DEFAULT_CONFIG)
    try:
        config = load_config(path, args.set)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    if args.print_config:
        console.print(dump_config(config), end="", markup=False)
        return
    if not args.resume:
        out = Path(args.out) if args.out else Path("runs") / config.name
        if (out / CONFIG).exists() and not args.overwrite:
            raise UsageError(f"{out} already holds a run; pass --overwrite, --resume {out} "
                             "or choose another --out")
        from detente.agents import preflight

        preflight(config)  # every agent and model the run names, before the old folder goes
        fresh_dir(out)  # a new run starts from an empty folder: nothing of an old one survives
    if args.resume and config.agent.kind == "tabular":
        raise UsageError("tabular runs take seconds and keep no resume state: train again instead")
    console.print(f"[bold]detente train[/] {config.name}: {config.credit.algorithm} on {config.game.name}, "
                  f"{config.agent.kind} agent, co-player {config.coplayer}, "
                  f"{config.train.iterations} iterations -> {out}")
    with _progress() as progress:
        task = progress.add_task("training", total=config.train.iterations, status="")

        def on_iteration(metrics: dict[str, Any]) -> None:
            status = f"reward {metrics['reward_mean']:.2f}"
            if metrics.get("cooperation_rate") is not None:
                status += f"  coop {metrics['cooperation_rate']:.2f}"
            progress.update(task, completed=metrics["iteration"] + 1, status=status)

        _run_trainer(config, out, on_iteration, resume=bool(args.resume), force=args.force)

    agents = [f"run:{out}", *config.eval_opponents]
    result = _tournament(config.game.name, config.game.params, agents, config.eval_games, config.seed,
                         transcripts=CROSSPLAY_GAMES)
    write_crossplay(out, result)
    _print_summary(result, agents[0], out)


def _run_trainer(config: Any, out: Path, on_iteration: Any, resume: bool, force: bool) -> None:
    if config.agent.kind == "tabular":
        from detente.train.tabular import train_tabular

        train_tabular(config, out, on_iteration)
        return
    from detente.train.llm import train_llm

    train_llm(config, out, on_iteration, resume=resume, force=force)


def resolve_config(name: str) -> Path:
    """A config file path, or the name of a preset shipped with detente (``ipd_tabular_naive``)."""
    from detente.config import ConfigError, preset_path

    path = Path(name)
    if path.exists():
        return path
    try:
        return preset_path(name)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _print_summary(result: Any, agent: str, out: Path) -> None:
    i = result.agents.index(agent)
    behaviour = result.behaviour.get(agent, {})
    table = Table(title=f"{agent}: reward per round in cross-play")
    table.add_column("opponent")
    table.add_column("reward / round", justify="right")
    table.add_column("opponent's", justify="right")
    for j, name in enumerate(result.agents):
        label = "itself" if j == i else name
        table.add_row(label, f"{result.mean_reward[i][j]:.2f} ± {result.ci95[i][j]:.2f}",
                      f"{result.mean_reward[j][i]:.2f}")
    console.print(table)
    if behaviour:
        console.print("behaviour over all its cross-play games:")
    for key, value in behaviour.items():
        console.print(f"{key}: {'n/a' if value is None else f'{value:.2f}'}")
    console.print(f"metrics: {out / METRICS}   cross-play: {out / MATRIX}")


# ---------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> None:
    if args.axelrod:
        try:
            from detente.eval.axelrod_bridge import cmd_eval_axelrod
        except ModuleNotFoundError as error:
            if error.name != "axelrod":
                raise
            raise UsageError("--axelrod needs the Axelrod library: pip install 'detente[axelrod]'") from None
        return cmd_eval_axelrod(args)
    if (args.axelrod_strategies, args.turns, args.repetitions) != (None, None, None):
        raise UsageError("--axelrod-strategies, --turns and --repetitions go with --axelrod")
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    if not agents:
        raise UsageError("--agents needs at least one agent, e.g. --agents tft,alld")
    params = _parse_params(args.param)
    result = _tournament(args.game, params, agents, args.games, args.seed, transcripts=args.transcripts)
    _print_matrix(result)
    if args.out:
        out = Path(args.out)
        write_crossplay(out, result)
        console.print(f"wrote {out / MATRIX}")
        if result.transcripts:
            console.print(f"wrote {len(result.transcripts)} games to {out / CROSSPLAY_TRANSCRIPTS} "
                          f"(detente report {out} shows them)")


def write_crossplay(out: Path, result: Any) -> None:
    """``matrix.json`` and, if the tournament kept any, ``transcripts/crossplay.jsonl`` in ``out``."""
    write_atomic(out / MATRIX, json.dumps(result.to_json(), indent=2))
    if result.transcripts:
        lines = "".join(json.dumps(line) + "\n" for line in result.transcripts)
        write_atomic(out / CROSSPLAY_TRANSCRIPTS, lines)


def _tournament(game: str, params: dict[str, Any], agents: list[str], games: int, seed: int,
                transcripts: int = 0) -> Any:
    from detente.agents import make_agents
    from detente.eval.tournament import cross_play
    from detente.games import make_game

    try:
        probe = make_game(game, **params)
        policies = make_agents(agents, probe)
    except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: ModelNotFound
        raise UsageError(str(error)) from None
    pairs = len(agents) * (len(agents) + 1) // 2
    with _progress() as progress:
        task = progress.add_task("cross-play", total=pairs, status=f"{games} games per pair")
        return cross_play(lambda: make_game(game, **params), policies, games, seed,
                          on_pair_done=lambda: progress.advance(task), transcripts=transcripts)


def _print_matrix(result: Any) -> None:
    table = Table(title=f"{result.game}: mean reward per round of the row agent "
                  f"({result.games_per_pair} games per pair, ±95% CI)")
    table.add_column("row agent")
    for name in result.agents:
        table.add_column(name, justify="right")
    table.add_column("average", justify="right", style="bold")
    for name, row, ci, average in zip(result.agents, result.mean_reward, result.ci95,
                                      result.round_robin(), strict=True):
        table.add_row(name, *(f"{m:.2f}±{c:.2f}" for m, c in zip(row, ci, strict=True)), f"{average:.2f}")
    console.print(table)
    if result.behaviour:
        behaviour = Table(title="behaviour")
        behaviour.add_column("agent")
        keys = list(next(iter(result.behaviour.values())))
        for key in keys:
            behaviour.add_column(key.removesuffix("_rate"), justify="right")
        for name, stats in result.behaviour.items():
            behaviour.add_row(name, *("n/a" if stats[k] is None else f"{stats[k]:.2f}" for k in keys))
        console.print(behaviour)


# ---------------------------------------------------------------- play
def cmd_play(args: argparse.Namespace) -> None:
    from detente.agents import make_agent
    from detente.games import make_game
    from detente.rollout.play import play

    names = [a.strip() for a in args.agents.split(",")]
    if len(names) != 2:
        raise UsageError(f"--agents needs exactly two agents, got {len(names)}")
    try:
        game = make_game(args.game, **_parse_params(args.param))
        seating = (make_agent(names[0], game), make_agent(names[1], game))
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    episode = play([game], [seating], [args.seed])[0]
    for decision in episode.decisions:
        flag = "" if decision.valid else "  [invalid: fallback taken]"
        console.print(f"round {decision.round + 1}  {names[decision.seat]:>10}: {decision.raw!r}{flag}",
                      markup=False)
    for t, rewards in enumerate(game.round_rewards):
        console.print(f"round {t + 1} rewards: {rewards[0]:g} / {rewards[1]:g}")
    total = game.returns()
    console.print(f"[bold]total[/]: {names[0]} {total[0]:g}, {names[1]} {total[1]:g}")


# ---------------------------------------------------------------- models
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


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    import yaml

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--param {item!r} must look like key=value")
        params[key] = yaml.safe_load(value)
    return params


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=console, transient=False,
    )


# ---------------------------------------------------------------- entry
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detente", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

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
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.add_argument("--help-config", action="store_true", help="print every config key with its "
                       "type, default and description, and exit")
    train.set_defaults(func=cmd_train)

    for name, func, helptext in (("eval", cmd_eval, "cross-play tournament between agents"),
                                 ("play", cmd_play, "play one game between two agents, print it")):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("--game", default="ipd", help="game name (default ipd)")
        command.add_argument("--agents", required=True,
                             help="comma-separated agents: scripted names (tft, alld, ...), run:DIR, human")
        command.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                             help="game parameter, e.g. --param n_rounds=20 (repeatable)")
        command.add_argument("--seed", type=int, default=0, help="first game seed (default 0)")
        command.set_defaults(func=func)
        if name == "eval":
            command.add_argument("--games", type=int, default=200, help="games per pair (default 200)")
            command.add_argument("--out", help="folder for matrix.json (axelrod.json with --axelrod)")
            command.add_argument("--transcripts", type=int, default=CROSSPLAY_GAMES, metavar="K",
                                 help=f"with --out: keep the first K games of every pairing in "
                                 f"{CROSSPLAY_TRANSCRIPTS} (default {CROSSPLAY_GAMES})")
            command.add_argument("--axelrod", action="store_true",
                                 help="play the one agent of --agents (ipd) in an Axelrod round robin "
                                 "and print its rank (needs pip install 'detente[axelrod]')")
            command.add_argument("--axelrod-strategies", metavar="A,B,...",
                                 help="Axelrod strategies to meet (default: Cooperator, Defector, Random, "
                                 "TitForTat, Grudger, FirstByShubik, FirstByJoss)")
            command.add_argument("--turns", type=int, help="turns per Axelrod match (default 200)")
            command.add_argument("--repetitions", type=int, help="Axelrod round robins (default 10)")
    models = sub.add_parser("models", help="list the language models detente can load and their cache")
    models.set_defaults(func=cmd_models)

    from detente.eval.exploit import add_exploit_command
    from detente.eval.report import add_report_command

    add_exploit_command(sub)
    add_report_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a problem the user can fix is one line on stderr and status 2, a run that
    had to stop (non-finite updates, unusable data) one line and status 1."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UsageError, ConfigError) as error:
        _error(error)
        return 2
    except DetenteError as error:
        _error(error)
        return 1
    return 0


def _error(error: Exception) -> None:
    Console(stderr=True, soft_wrap=True).print(f"error: {error}", style="red", markup=False, highlight=False)


if __name__ == "__main__":
    sys.exit(main())
