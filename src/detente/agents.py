"""Agents named on the command line or in a config, turned into policies for a game.

The names follow one grammar (:mod:`detente.agent_spec`): a scripted strategy
(``tft``, ``random:0.3``, ``greedy`` ...; :mod:`detente.policies.scripted`),
``run:DIR[@N]`` (the agent trained in a run folder), ``model:NAME`` (a
language model as it is) or ``human``.

:func:`check_agent` says, without loading any model, whether a name can play a
game on this machine (the strategy exists for the game, the run folder holds
a finished run of that game with the checkpoint asked for, the model is
installed); :func:`preflight` checks every agent and model a run config names,
before a trainer loads anything. Failures are one-line
:class:`~detente.errors.ConfigError` / :class:`~detente.models.ModelNotFound`.

Language-model agents on the same base model share one copy of its weights:
each trained agent is one more LoRA adapter on it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from detente.agent_spec import AgentSpec, parse_agent
from detente.errors import ConfigError
from detente.games import make_game
from detente.games.base import Game
from detente.policies.base import Policy
from detente.policies.human import HumanPolicy
from detente.policies.scripted import make_scripted
from detente.runs import (
    ADAPTER_DIR,
    CHECKPOINTS,
    POLICY_FILE,
    RUN_INFO,
    RunFileError,
    checkpoint_dir,
    read_config,
    read_latest,
    read_policy,
    read_run_info,
)

if TYPE_CHECKING:
    from detente.config import EndpointConfig, RunConfig
    from detente.policies.api import Endpoint
    from detente.policies.llm_backend import LoRAModel


class AgentPool:
    """Builds agents for one game, sharing base models between language-model agents."""

    def __init__(self, game: Game, models: dict[str, LoRAModel] | None = None,
                 endpoints: Mapping[str, EndpointConfig] | None = None, api_cache: bool = True) -> None:
        self.game = game
        self.models: dict[str, LoRAModel] = dict(models or {})
        self.endpoints = dict(endpoints or {})
        """Named endpoints for ``api:MODEL@NAME`` agents (a run config's ``endpoints``)."""
        self.api_cache = api_cache

    def make(self, name: str | AgentSpec) -> Policy:
        """The policy called ``name``; :class:`ConfigError` with a readable reason if there is none."""
        spec = parse_agent(name) if isinstance(name, str) else name
        check_agent(spec, self.game, endpoints=self.endpoints)
        if spec.kind == "run":
            return self._run_agent(spec)
        if spec.kind == "api":
            return self._api_agent(spec)
        if spec.kind == "model":
            from detente.policies.llm import LLMPolicy

            return LLMPolicy(self._model(spec.value, None), None, name=spec.text)
        if spec.kind == "human":
            return HumanPolicy()
        if spec.kind == "scripted":
            return make_scripted(spec.value, self.game)
        raise ConfigError(f"{spec.text!r} names no agent of its own here (it is a training co-player)")

    def _run_agent(self, spec: AgentSpec) -> Policy:
        if tabular_run(spec.run_dir):
            from detente.policies.tabular import TabularPolicy

            return TabularPolicy(read_policy(spec.run_dir).cooperate_prob, name=spec.text)
        from detente.policies.llm import LLMPolicy

        config = run_config(spec.run_dir)
        agent = config.agent
        lm = self._model(agent.model, config)
        adapter = f"agent-{len(lm.adapters)}"
        lm.load_adapter(adapter, checkpoint_folder(spec) / ADAPTER_DIR)
        return LLMPolicy(lm, adapter, name=spec.text, **agent.policy_options())

    def _api_agent(self, spec: AgentSpec) -> Policy:
        from detente.policies.api import APIPolicy

        config = self.endpoints.get(spec.endpoint) if spec.endpoint else None
        if config is None:
            return APIPolicy(spec.value, name=spec.text, cache=self.api_cache)
        sampling = {"temperature": config.temperature, "max_tokens": config.max_tokens}
        return APIPolicy(spec.value, api_endpoint(config), name=spec.text, cache=self.api_cache, **sampling)

    def _model(self, name: str, config: RunConfig | None) -> LoRAModel:
        if name not in self.models:
            from detente.policies.llm_backend import LoRAModel

            lora = {} if config is None else {"lora_r": config.agent.lora_r,
                                              "lora_alpha": config.agent.lora_alpha}
            self.models[name] = LoRAModel.load(name, **lora)
        return self.models[name]


def checkpoint_folder(spec: AgentSpec) -> Path:
    """The checkpoint folder of an llm ``run:DIR[@N]`` agent (the last one without ``@N``)."""
    if spec.at is not None:
        return checkpoint_dir(spec.run_dir, spec.at)
    folder = read_latest(spec.run_dir)
    if folder is None:
        raise ConfigError(f"{spec.text}: {spec.run_dir} has no checkpoint yet")
    return folder


def check_agent(spec: AgentSpec, game: Game, where: str = "",
                endpoints: Mapping[str, EndpointConfig] | None = None) -> None:
    """:class:`ConfigError` unless ``spec`` can play ``game`` here; no model is loaded, no endpoint asked.

    ``where`` (e.g. ``"coplayer"``) starts the message when given; ``endpoints`` are the named API
    endpoints ``api:MODEL@NAME`` may use.
    """
    say = f"{where}: " if where else ""
    if spec.kind == "api":
        _check_api(spec, endpoints or {}, say)
    if spec.kind == "scripted":
        try:
            make_scripted(spec.value, game)
        except ConfigError as error:
            raise ConfigError(f"{say}{error}") from None
    elif spec.kind == "model":
        from detente.models import ModelNotFound, check_model

        try:
            check_model(spec.value)
        except ModelNotFound as error:
            raise ConfigError(f"{say}{error}") from None
    elif spec.kind == "run":
        _check_run(spec, game, say)


def _check_run(spec: AgentSpec, game: Game, say: str) -> None:
    if tabular_run(spec.run_dir):
        if spec.at is not None:
            raise ConfigError(f"{say}{spec.text}: tabular runs keep only their final policy, no @iteration")
        try:
            trained_on = read_policy(spec.run_dir).game
        except RunFileError as error:
            raise ConfigError(f"{say}{spec.text}: {error}") from None
        if trained_on != game.name:
            raise ConfigError(f"{say}{spec.text} was trained on {trained_on!r}; it cannot play {game.name!r}")
        return
    try:
        config = run_config(spec.run_dir)
    except ConfigError as error:
        raise ConfigError(f"{say}{error}") from None
    if config.game.name != game.name:
        raise ConfigError(f"{say}{spec.text} was trained on {config.game.name!r}; "
                          f"it cannot play {game.name!r}")
    folder = checkpoint_folder(spec)
    if not (folder / ADAPTER_DIR).is_dir():
        kept = sorted(p.name for p in (spec.run_dir / CHECKPOINTS).glob("iter_*"))
        raise ConfigError(f"{say}{spec.text}: no checkpoint {folder.name}; kept: {', '.join(kept) or 'none'}")
    from detente.models import ModelNotFound, check_model

    try:
        check_model(config.agent.model)
    except ModelNotFound as error:
        raise ConfigError(f"{say}{spec.text}: {error}") from None


def _check_api(spec: AgentSpec, endpoints: Mapping[str, EndpointConfig], say: str) -> None:
    if importlib.util.find_spec("openai") is None:
        raise ConfigError(f"{say}{spec.text} needs the openai client: pip install 'detente[api]'")
    if spec.endpoint is not None and spec.endpoint not in endpoints:
        known = ", ".join(endpoints) or "none"
        raise ConfigError(f"{say}{spec.text}: no endpoint {spec.endpoint!r} (defined: {known}; name them "
                          "under endpoints: in the config)")
    env = endpoints[spec.endpoint].api_key_env if spec.endpoint else "OPENAI_API_KEY"
    if not os.environ.get(env):
        raise ConfigError(f"{say}{spec.text}: environment variable {env} is not set; it must hold the API "
                          "key")


def api_endpoint(config: EndpointConfig) -> Endpoint:
    """The API policy's :class:`~detente.policies.api.Endpoint` of a config's endpoint."""
    from detente.policies.api import Endpoint

    fields = config.model_dump(exclude={"temperature", "max_tokens"})
    return Endpoint(**fields)


def preflight(config: RunConfig, *, learner_model: bool = True) -> None:
    """Check, before any model loads, what a run needs from this machine: Ray for
    ``rollout.backend ray``, the learner's model (unless ``learner_model`` is False: the caller has it
    loaded), and the folders and models of every ``run:`` / ``model:`` co-player and evaluation
    opponent."""
    from detente.models import ModelNotFound, check_model

    if config.rollout.backend == "ray":
        from detente.rollout.ray_pool import require_ray

        require_ray()
    if config.agent.kind == "llm" and learner_model:
        try:
            check_model(config.agent.model)
        except ModelNotFound as error:
            raise ConfigError(f"agent.model: {error}") from None
    game = make_game(config.game.name, **config.game.params)
    named = [("coplayer", config.coplayer)] + [("eval_opponents", n) for n in config.eval_opponents]
    for where, name in named:
        spec = parse_agent(name)
        check_agent(spec, game, where, config.endpoints)
        if where == "coplayer" and spec.kind == "run" and config.agent.kind == "tabular" \
                and not tabular_run(spec.run_dir):
            raise ConfigError(f"coplayer: {spec.text} is an llm run; a tabular learner plays tabular runs")


def make_agents(names: Sequence[str], game: Game, endpoints: Mapping[str, EndpointConfig] | None = None,
                api_cache: bool = True) -> dict[str, Policy]:
    """One policy per name, sharing base models; :class:`ConfigError` on an unknown or repeated name."""
    if len(set(names)) != len(names):
        raise ConfigError("each agent may be named only once")
    pool = AgentPool(game, endpoints=endpoints, api_cache=api_cache)
    return {name: pool.make(name) for name in names}


def make_agent(name: str, game: Game, models: dict[str, LoRAModel] | None = None,
               endpoints: Mapping[str, EndpointConfig] | None = None, api_cache: bool = True) -> Policy:
    """One policy; a language-model agent reuses ``models[name]`` when its base model is loaded there."""
    return AgentPool(game, models, endpoints, api_cache).make(name)


def run_config(run_dir: Path) -> RunConfig:
    """The config of the run in ``run_dir``; :class:`ConfigError` if it is no run folder."""
    return read_config(run_dir)


def tabular_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a memory-1 table (``policy.json``) rather than an llm run: its
    ``run.json`` says a tabular trainer made it, or (older runs) its config's agent is tabular."""
    if (Path(run_dir) / RUN_INFO).is_file():
        return read_run_info(run_dir).tabular
    return (Path(run_dir) / POLICY_FILE).is_file()
