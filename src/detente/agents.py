"""Resolve an agent named on the command line into a policy for a game.

Names:

* a scripted strategy: ``tft``, ``alld``, ``random:0.3``, ``greedy`` ... (see
  :mod:`detente.policies.scripted`);
* ``run:DIR``: the agent trained in the run folder ``DIR``;
* ``human``: you, at the terminal.
"""

from __future__ import annotations

from pathlib import Path

from detente.games.base import Game
from detente.policies.base import Policy
from detente.policies.human import HumanPolicy
from detente.policies.scripted import make_scripted
from detente.runs import CONFIG

RUN_PREFIX = "run:"


def make_agent(spec: str, game: Game) -> Policy:
    """The policy called ``spec`` for ``game``; ``ValueError`` with a readable reason if none."""
    if spec.startswith(RUN_PREFIX):
        policy = load_run_agent(Path(spec.removeprefix(RUN_PREFIX)), game)
        policy.name = spec
        return policy
    if spec == "human":
        return HumanPolicy()
    return make_scripted(spec, game)


def load_run_agent(run_dir: Path, game: Game) -> Policy:
    """The trained agent of ``run_dir``, checked against the game it is asked to play."""
    from detente.config import ConfigError, load_config

    config_path = run_dir / CONFIG
    if not config_path.exists():
        raise ValueError(f"{run_dir} is not a run folder: {config_path} is missing")
    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise ValueError(f"{config_path}: {error}") from None
    if config.agent.kind == "tabular":
        from detente.games.ipd import MatrixGame
        from detente.policies.tabular import TabularPolicy

        if not isinstance(game, MatrixGame):
            raise ValueError(f"{run_dir} holds a tabular matrix-game agent; it cannot play {game.name}")
        return TabularPolicy.load(run_dir)
    raise ValueError(f"{run_dir}: agents of kind {config.agent.kind!r} cannot be loaded yet")
