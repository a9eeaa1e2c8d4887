"""``detente eval``: a cross-play tournament between agents, or one agent in an Axelrod round robin."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from detente.agent_spec import FORMS
from detente.cli.common import (
    CROSSPLAY_GAMES,
    UsageError,
    add_api_arguments,
    agent_names,
    console,
    load_endpoints,
    make_game_or_fail,
    parse_params,
    print_matrix,
    progress,
)
from detente.eval.tournament import CrossPlay
from detente.runs import AXELROD, CROSSPLAY_TRANSCRIPTS, MATRIX, write_crossplay, write_result, write_run_info

RAY_WORKERS = 2
"""Ray workers of ``detente eval --ray`` when ``--workers`` is not given."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("eval", help="cross-play tournament between agents")
    add_game_arguments(command)
    command.add_argument("--agents", required=True, help=f"comma-separated agents: {FORMS}")
    command.add_argument("--games", type=int, default=200, help="games per pair (default 200)")
    command.add_argument("--out", help="folder for matrix.json (axelrod.json with --axelrod)")
    command.add_argument("--transcripts", type=int, default=CROSSPLAY_GAMES, metavar="K",
                         help=f"with --out: keep the first K games of every pairing in "
                         f"{CROSSPLAY_TRANSCRIPTS} (default {CROSSPLAY_GAMES})")
    command.add_argument("--ray", action="store_true", help="spread the pairings over Ray workers (one CPU "
                         "each; needs pip install 'detente[ray]'); matrix.json is the same as without")
    command.add_argument("--workers", type=int, metavar="N", help="with --ray: Ray workers (default 2)")
    command.add_argument("--ray-address", metavar="ADDR", help="with --ray: join the Ray cluster at ADDR "
                         "(default: $RAY_ADDRESS, else a Ray runtime started on this machine)")
    command.add_argument("--axelrod", action="store_true", help="play the one agent of --agents (ipd) in an "
                         "Axelrod round robin and print its rank (needs pip install 'detente[axelrod]')")
    command.add_argument("--axelrod-strategies", metavar="A,B,...", help="Axelrod strategies to meet "
                         "(default: Cooperator, Defector, Random, TitForTat, Grudger, FirstByShubik, "
                         "FirstByJoss)")
    command.add_argument("--turns", type=int, help="turns per Axelrod match (default 200)")
    command.add_argument("--repetitions", type=int, help="Axelrod round robins (default 10)")
    add_api_arguments(command)
    command.set_defaults(func=cmd_eval)


def add_game_arguments(command: argparse.ArgumentParser) -> None:
    """--game, --param, --seed: shared by eval and play."""
    command.add_argument("--game", default="ipd", help="game name (default ipd)")
    command.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                         help="game parameter, e.g. --param n_rounds=20 (repeatable)")
    command.add_argument("--seed", type=int, default=0, help="first game seed (default 0)")


def cmd_eval(args: argparse.Namespace) -> None:
    if args.axelrod:
        if args.ray or args.workers is not None or args.ray_address:
            raise UsageError("--ray, --workers and --ray-address do not apply with --axelrod")
        return cmd_eval_axelrod(args)
    if (args.axelrod_strategies, args.turns, args.repetitions) != (None, None, None):
        raise UsageError("--axelrod-strategies, --turns and --repetitions go with --axelrod")
    if not args.ray and (args.workers is not None or args.ray_address):
        raise UsageError("--workers and --ray-address go with --ray")
    if args.ray and args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    agents = agent_names(args.agents)
    workers = (args.workers or RAY_WORKERS) if args.ray else None
    result = run_tournament(args.game, parse_params(args.param), agents, args.games, args.seed,
                            transcripts=args.transcripts, endpoints=load_endpoints(args.endpoints),
                            api_cache=not args.no_cache, ray_workers=workers, ray_address=args.ray_address)
    print_matrix(result.record)
    if args.out:
        out = Path(args.out)
        write_run_info(out, "eval", make_game_or_fail(args.game, parse_params(args.param)))
        write_crossplay(out, result.record, result.transcripts)
        console.print(f"wrote {out / MATRIX}")
        if result.transcripts:
            console.print(f"wrote {len(result.transcripts)} games to {out / CROSSPLAY_TRANSCRIPTS} "
                          f"(detente report {out} shows them)")


def run_tournament(game: str, params: dict[str, Any], agents: list[str], games: int, seed: int,
                   transcripts: int = 0, endpoints: dict[str, Any] | None = None,
                   api_cache: bool = True, ray_workers: int | None = None,
                   ray_address: str | None = None) -> CrossPlay:
    """Build the agents and play the cross-play tournament, with one progress bar over its pairings:
    here, or with ``ray_workers`` on that many Ray workers (of the cluster at ``ray_address``)."""
    from detente.agents import make_agents
    from detente.eval.tournament import cross_play
    from detente.games import make_game

    if games < 1:
        raise UsageError(f"--games must be >= 1, got {games}")
    probe = make_game_or_fail(game, params)
    pairs = len(agents) * (len(agents) + 1) // 2
    with progress() as bar:
        task = bar.add_task("cross-play", total=pairs, status=f"{games} games per pair")
        if ray_workers is not None:
            from detente.eval.ray_tournament import ray_cross_play
            from detente.rollout.ray_pool import connect, require_ray

            require_ray("--ray")
            connect(ray_address)

            def on_progress(done: int, total: int | None, status: str) -> None:
                bar.update(task, completed=done, status=f"{games} games per pair, {status}")

            return ray_cross_play(game, params, agents, games, seed, transcripts, ray_workers,
                                  on_progress=on_progress, endpoints=endpoints, api_cache=api_cache)
        policies = make_agents(agents, probe, endpoints, api_cache)
        return cross_play(lambda: make_game(game, **params), policies, games, seed,
                          on_pair_done=lambda: bar.advance(task), transcripts=transcripts)


# ---------------------------------------------------------------- --axelrod
def cmd_eval_axelrod(args: argparse.Namespace) -> None:
    """``detente eval --axelrod``: one detente agent in an Axelrod round robin; prints its rank."""
    try:
        bridge = importlib.import_module("detente.eval.axelrod_bridge")
    except ModuleNotFoundError as error:
        if error.name != "axelrod":
            raise
        raise UsageError("--axelrod needs the Axelrod library: pip install 'detente[axelrod]'") from None
    agents = agent_names(args.agents)
    if len(agents) != 1:
        raise UsageError(f"--axelrod plays exactly one detente agent against Axelrod's strategies; "
                         f"--agents names {len(agents)}")
    if args.game != "ipd":
        raise UsageError(f"--axelrod plays the iterated prisoner's dilemma (--game ipd), not {args.game!r}")
    if args.param:
        raise UsageError("--param does not apply with --axelrod: the match length is --turns and the "
                         "payoffs are Axelrod's (R, P, S, T = 3, 1, 0, 5, the same as detente's ipd)")
    strategies = None
    if args.axelrod_strategies is not None:
        strategies = [s.strip() for s in args.axelrod_strategies.split(",") if s.strip()]
    turns = bridge.DEFAULT_TURNS if args.turns is None else args.turns
    repetitions = bridge.DEFAULT_REPETITIONS if args.repetitions is None else args.repetitions
    shown = ", ".join(strategies if strategies is not None else bridge.DEFAULT_STRATEGIES)
    console.print(f"[bold]detente eval --axelrod[/] {escape(agents[0])} against {escape(shown)}: "
                  f"{turns} turns, {repetitions} repetitions, seed {args.seed}", highlight=False)
    try:
        result = bridge.axelrod_tournament(agents[0], strategies, turns, repetitions, args.seed)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    console.print(axelrod_table(result))
    console.print(f"[bold]{escape(result.agent)}: rank {result.rank} of {result.n_players}[/]"
                  + (f" ({result.invalid} invalid replies of {result.decisions})" if result.invalid else ""),
                  highlight=False, soft_wrap=True)
    if args.out:
        path = write_result(Path(args.out), AXELROD, result.to_json())
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def axelrod_table(result: Any) -> Table:
    """A rich table of the ranking, the detente agent's row in bold."""
    table = Table(title=f"Axelrod round robin: {result.turns} turns, {result.repetitions} repetitions, "
                        f"seed {result.seed}; score = mean payoff per turn")
    for column in ("rank", "player", "median score", "mean score", "cooperation", "wins"):
        table.add_column(column, justify="left" if column == "player" else "right")
    for s in result.standings:
        table.add_row(str(s.rank), escape(s.name), f"{s.median_score:.3f}", f"{s.mean_score:.3f}",
                      f"{s.cooperation_rate:.2f}", f"{s.wins:g}",
                      style="bold" if s.name == result.agent else None)
    return table
