"""A thin PettingZoo ``ParallelEnv`` over any detente game.

Version 1. The game cores know nothing of PettingZoo; this module is the only
place that imports it (install the ``pettingzoo`` extra). Build one with
``parallel_env("ipd")`` or ``DetenteParallelEnv(make_game(...))``.

=================  ==========================================================
Agents             ``"player_0"`` (seat 0) and ``"player_1"`` (seat 1); both
                   live until the game ends, then both terminate together
Action space       ``gymnasium.spaces.Text`` over printable ASCII, up to
                   :data:`MAX_ACTION_CHARS` characters: the raw reply, parsed
                   by the game exactly as a language model's reply would be
Observation space  ``gymnasium.spaces.Text`` over printable ASCII, up to
                   :data:`MAX_OBSERVATION_CHARS` characters: the game's
                   :meth:`~detente.games.base.Game.observation`, everything
                   the seat was told since it last acted (it can repeat for a
                   seat that is not asked to act). Free-text messages from
                   other players are passed through unchanged, so a message
                   with characters outside printable ASCII leaves the space
Rewards            the round's raw game rewards on the step that ends a
                   round, else 0 (divide by ``game.reward_scale`` to learn)
=================  ==========================================================

Phases where only one seat acts (a message in Trust-and-Split or Deal or No
Deal): every live agent still sends an action each step, as the parallel API
requires, but only the seats the game is waiting for are used; the others'
actions are ignored. ``infos[agent]["must_act"]`` says, before each step,
whether that agent's next action counts, and ``infos[agent]["spec"]`` gives
its :data:`~detente.games.base.ActionSpec` (``None`` when it only waits).

A reply that does not parse (PettingZoo's random test actions, for instance)
is replaced by the game's fallback action and reported in the next step's
``infos[agent]["invalid"]`` with the parse error's reason; nothing an agent
sends can stop the episode.
"""

from __future__ import annotations

import random
import string
from typing import Any

from gymnasium.spaces import Text
from pettingzoo import ParallelEnv

from detente.games import make_game
from detente.games.base import SEATS, Game, ParseError, fallback_action

AGENTS = ("player_0", "player_1")
MAX_ACTION_CHARS = 1024
"""Longest raw action accepted by the action space (messages are at most 500 characters)."""
MAX_OBSERVATION_CHARS = 1 << 16
CHARSET = string.printable
"""Printable ASCII plus whitespace: every character the games themselves write."""


class DetenteParallelEnv(ParallelEnv):
    """PettingZoo parallel API over one detente :class:`~detente.games.base.Game`."""

    def __init__(self, game: Game) -> None:
        self.game = game
        self.metadata = {
            "name": f"detente_{game.name}_v{game.version}", "render_modes": [], "is_parallelizable": True,
        }
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._observation_spaces = {
            agent: Text(MAX_OBSERVATION_CHARS, min_length=0, charset=CHARSET) for agent in AGENTS
        }
        self._action_spaces = {
            agent: Text(MAX_ACTION_CHARS, min_length=0, charset=CHARSET) for agent in AGENTS
        }
        self._seeds = random.Random()
        """Seeds for resets without one (a fresh stream per env unless reset with a seed)."""

    def observation_space(self, agent: str) -> Text:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> Text:
        return self._action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """Start a new game; ``seed`` fixes everything random in it, ``options`` is unused."""
        if seed is not None:
            self._seeds.seed(seed)
            for agent in AGENTS:
                self._action_spaces[agent].seed(seed + 1 + AGENTS.index(agent))
        else:
            seed = self._seeds.randrange(2**31)
        self.game.reset(seed)
        self.agents = list(AGENTS)
        return self._observations(), self._infos({})

    def step(
        self, actions: dict[str, str]
    ) -> tuple[
        dict[str, str], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]
    ]:
        """Apply the actions of the seats the game waits for; the others' actions are ignored."""
        if not self.agents:
            raise RuntimeError("the game is over: call reset() before step()")
        pending = self.game.pending()
        taken = {}
        invalid: dict[str, str] = {}
        for seat, spec in pending.items():
            agent = AGENTS[seat]
            if agent not in actions:
                raise ValueError(f"{agent} must act now ({spec!r}) but sent no action")
            parsed = self.game.parse(seat, str(actions[agent]))
            if isinstance(parsed, ParseError):
                invalid[agent] = parsed.reason
                parsed = fallback_action(spec)
            taken[seat] = parsed
        round_rewards = self.game.step(taken) or (0.0, 0.0)
        observations = self._observations()
        rewards = {AGENTS[seat]: float(round_rewards[seat]) for seat in SEATS}
        done = self.game.done
        terminations = dict.fromkeys(AGENTS, done)
        truncations = dict.fromkeys(AGENTS, False)
        infos = self._infos(invalid)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, str]:
        return {AGENTS[seat]: self.game.observation(seat) for seat in SEATS}

    def _infos(self, invalid: dict[str, str]) -> dict[str, dict[str, Any]]:
        pending = self.game.pending()
        return {
            AGENTS[seat]: {
                "must_act": seat in pending,
                "spec": pending.get(seat),
                "round": self.game.round,
                "invalid": invalid.get(AGENTS[seat]),
            }
            for seat in SEATS
        }

    def render(self) -> None:
        """Nothing to draw: the observations are the rendering."""

    def close(self) -> None:
        """No resources to release."""


def parallel_env(name: str, **params: Any) -> DetenteParallelEnv:
    """The registered game ``name`` (built with ``params``) as a PettingZoo ``ParallelEnv``."""
    return DetenteParallelEnv(make_game(name, **params))
