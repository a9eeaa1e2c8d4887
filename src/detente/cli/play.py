"""``detente play``: one game between two agents (a person among them, at the terminal), printed."""

from __future__ import annotations

import argparse

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser("play", help="play one game between two agents, print it")
    add_game_arguments(command)
    add_api_arguments(command)
    command.set_defaults(func=cmd_play)


def cmd_play(args: argparse.Namespace) -> None:
    from detente.agents import make_agent
    from detente.policies.human import PlayerQuit
    from detente.rollout.play import play

    names = agent_names(args.agents)
    if len(names) != 2:
        raise UsageError(f"--agents needs exactly two agents, got {len(names)}")
    game = make_game_or_fail(args.game, parse_params(args.param))
    endpoints, cache = load_endpoints(args.endpoints), not args.no_cache
    seating = (make_agent(names[0], game, endpoints=endpoints, api_cache=cache),
               make_agent(names[1], game, endpoints=endpoints, api_cache=cache))
    try:
        episode = play([game], [seating], [args.seed])[0]
    except PlayerQuit:
        console.print("game left before its end; nothing saved")
        return
    for decision in episode.decisions:
        flag = "" if decision.valid else "  [invalid: fallback taken]"
        console.print(f"round {decision.round + 1}  {names[decision.seat]:>10}: {decision.raw!r}{flag}",
                      markup=False)
    for t, rewards in enumerate(game.round_rewards):
        console.print(f"round {t + 1} rewards: {rewards[0]:g} / {rewards[1]:g}")
    total = game.returns()
    console.print(f"[bold]total[/]: {names[0]} {total[0]:g}, {names[1]} {total[1]:g}")
