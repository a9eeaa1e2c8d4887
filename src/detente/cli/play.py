"""``detente play``: one game, printed and saved for ``detente report``; a person plays it at the terminal.

``--against AGENT`` seats you (seat 0, or ``--seat 1``) against any agent ``detente.agents`` builds;
``--agents A,B`` seats two agents (``human`` for a person). A person sees the rules, each round's news
(the co-player's moves and messages) and the score, types as people write (``A``, ``7``,
``hats 3 books 0 balls 10``; :mod:`detente.policies.human`) and is asked again after anything the game
cannot read. Ctrl-C or end of input leaves the game with one line and saves nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from detente.agent_spec import FORMS, parse_agent
from detente.cli.common import (
    UsageError,
    add_api_arguments,
    agent_names,
    console,
    load_endpoints,
    make_game_or_fail,
    parse_params,
)
from detente.cli.eval import add_game_arguments
from detente.games.base import Seat
from detente.runs import CROSSPLAY_TRANSCRIPTS, PLAY_ROOT, RUN_INFO, new_game_folder, write_game


def add_parser(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("play", help="play one game yourself against an agent, or watch two agents")
    add_game_arguments(command)
    add_api_arguments(command)
    who = command.add_mutually_exclusive_group(required=True)
    who.add_argument("--against", metavar="AGENT", help="you play against AGENT: a scripted name (tft, "
                     "greedy, ...), run:DIR[@N], model:NAME, api:MODEL[@ENDPOINT]")
    who.add_argument("--agents", metavar="A,B", help=f"two agents, seat 0 first: {FORMS}")
    command.add_argument("--seat", type=int, choices=(0, 1), help="with --against: your seat (default 0)")
    command.add_argument("--out", metavar="DIR",
                         help=f"folder to save the game in (default {PLAY_ROOT}/<time>)")
    command.set_defaults(func=cmd_play)


def cmd_play(args: argparse.Namespace) -> None:
    from detente.agents import AgentPool
    from detente.policies.human import PlayerQuit
    from detente.rollout.play import play, transcript

    names, you = seat_names(args)
    out = None if args.out is None else free_folder(Path(args.out))
    game = make_game_or_fail(args.game, parse_params(args.param))
    pool = AgentPool(game, endpoints=load_endpoints(args.endpoints), api_cache=not args.no_cache)
    seating = (pool.make(names[0]), pool.make(names[1]))
    try:
        episode, = play([game], [seating], [args.seed])
    except (PlayerQuit, KeyboardInterrupt):
        console.print("\ngame left before its end; nothing saved")
        return
    shown = ["you" if seat == you else name for seat, name in enumerate(names)]
    for seat, name in enumerate(names):
        news = game.observation(seat) if parse_agent(name).kind == "human" else ""
        if news:
            console.print(f"\n{news}", markup=False, highlight=False)
    console.print()
    for decision in episode.decisions:
        flag = "" if decision.valid else "  [invalid: fallback taken]"
        console.print(f"round {decision.round + 1}  {shown[decision.seat]:>10}: {decision.raw!r}{flag}",
                      markup=False)
    for t, rewards in enumerate(game.round_rewards):
        console.print(f"round {t + 1} rewards: {rewards[0]:g} / {rewards[1]:g}")
    total = game.returns()
    console.print(f"[bold]total[/]: {escape(shown[0])} {total[0]:g}, {escape(shown[1])} {total[1]:g}")
    folder = new_game_folder() if out is None else out
    path = write_game(folder, game, transcript(episode, seating, 0, seed=args.seed))
    console.print(f"saved {path} (detente report {folder} shows it)", markup=False, highlight=False)


def seat_names(args: argparse.Namespace) -> tuple[list[str], Seat | None]:
    """The agent names of seats 0 and 1, and the seat of ``--against``'s person (None with ``--agents``)."""
    if args.against is not None:
        if parse_agent(args.against).kind == "human":
            raise UsageError("--against names the other player; two people at one keyboard: "
                             "--agents human,human")
        you = 0 if args.seat is None else args.seat
        return (["human", args.against] if you == 0 else [args.against, "human"]), you
    if args.seat is not None:
        raise UsageError("--seat goes with --against; with --agents the order of the names is the seating")
    names = agent_names(args.agents)
    if len(names) != 2:
        raise UsageError(f"--agents needs exactly two agents, got {len(names)}")
    return names, None


def free_folder(folder: Path) -> Path:
    """``folder`` if a game can be saved there without replacing a run's or a game's files."""
    for name in (RUN_INFO, CROSSPLAY_TRANSCRIPTS):
        if (folder / name).exists():
            raise UsageError(f"--out {folder} already holds {name}; choose a new folder")
    return folder
