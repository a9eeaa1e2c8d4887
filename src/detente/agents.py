"""Resolve agents named on the command line into policies for a game.

Names:

* a scripted strategy: ``tft``, ``alld``, ``random:0.3``, ``greedy`` ... (see
  :mod:`detente.policies.scripted`);
* ``run:DIR``: the agent trained in the run folder ``DIR`` (its last
  checkpoint), ``run:DIR@N``: its checkpoint after iteration N;
* ``model:NAME``: a language model as it is, no adapter (``model:smollm2``);
* ``human``: you, at the terminal.

Language-model agents on the same base model share one copy of its weights:
each trained agent is one more LoRA adapter on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from detente.games.base import Game
from detente.policies.base import Policy
from detente.policies.human import HumanPolicy
from detente.policies.scripted import make_scripted
from detente.runs import CHECKPOINTS, CONFIG

if TYPE_CHECKING:
    from detente.config import RunConfig
    from detente.policies.llm_backend import LoRAModel

RUN_PREFIX = "run:"
MODEL_PREFIX = "model:"


class AgentPool:
    """Builds agents for one game, sharing base models between language-model agents."""

    def __init__(self, game: Game, models: dict[str, LoRAModel] | None = None) -> None:
        self.game = game
        self.models: dict[str, LoRAModel] = dict(models or {})

    def make(self, spec: str) -> Policy:
        """The policy called ``spec``; ``ValueError`` with a readable reason if there is none."""
        if spec.startswith(RUN_PREFIX):
            return self._run_agent(spec)
        if spec.startswith(MODEL_PREFIX):
            name = spec.removeprefix(MODEL_PREFIX)
            return self._model(name, None).policy(None, name=spec)
        if spec == "human":
            return HumanPolicy()
        return make_scripted(spec, self.game)

    def _run_agent(self, spec: str) -> Policy:
        run_dir, at = split_run_spec(spec)
        config = run_config(run_dir)
        if config.agent.kind == "tabular":
            from detente.games.ipd import MatrixGame
            from detente.policies.tabular import TabularPolicy

            if at:
                raise ValueError(f"{spec}: tabular runs keep only their final policy, no @iteration")
            if not isinstance(self.game, MatrixGame):
                raise ValueError(f"{run_dir} holds a tabular matrix-game agent; "
                                 f"it cannot play {self.game.name}")
            policy: Policy = TabularPolicy.load(run_dir)
            policy.name = spec
            return policy
        return self._llm_run_agent(spec, run_dir, config, at)

    def _llm_run_agent(self, spec: str, run_dir: Path, config: RunConfig, at: str) -> Policy:
        from detente.policies.llm import LLMPolicy
        from detente.train.llm import ADAPTER_DIR, read_latest

        if at:
            if not at.isdigit():
                raise ValueError(f"{spec}: the part after @ must be an iteration number")
            folder = run_dir / CHECKPOINTS / f"iter_{int(at)}"
        else:
            folder = read_latest(run_dir)
            if folder is None:
                raise ValueError(f"{run_dir} has no checkpoint yet")
        if not (folder / ADAPTER_DIR).is_dir():
            kept = sorted(p.name for p in (run_dir / CHECKPOINTS).glob("iter_*"))
            raise ValueError(f"{spec}: no checkpoint {folder.name}; kept: {', '.join(kept) or 'none'}")
        agent = config.agent
        lm = self._model(agent.model, config)
        adapter = f"agent-{len(lm.adapters)}"
        lm.load_adapter(adapter, folder / ADAPTER_DIR)
        return LLMPolicy(lm, adapter, name=spec, temperature=agent.temperature,
                         system_prompt=agent.system_prompt, batch_size=agent.act_batch_size,
                         max_message_tokens=agent.max_message_tokens)

    def _model(self, name: str, config: RunConfig | None) -> LoRAModel:
        if name not in self.models:
            from detente.policies.llm_backend import LoRAModel

            lora = {} if config is None else {"lora_r": config.agent.lora_r,
                                              "lora_alpha": config.agent.lora_alpha}
            self.models[name] = LoRAModel.load(name, **lora)
        return self.models[name]


def split_run_spec(spec: str) -> tuple[Path, str]:
    """``run:DIR@N`` -> ``(Path(DIR), "N")``; ``run:DIR`` -> ``(Path(DIR), "")``."""
    path, _, at = spec.removeprefix(RUN_PREFIX).partition("@")
    return Path(path), at


def make_agents(specs: Sequence[str], game: Game) -> dict[str, Policy]:
    """One policy per name, sharing base models; ``ValueError`` on an unknown or repeated name."""
    if len(set(specs)) != len(specs):
        raise ValueError("each agent may be named only once")
    pool = AgentPool(game)
    return {spec: pool.make(spec) for spec in specs}


def make_agent(spec: str, game: Game, models: dict[str, LoRAModel] | None = None) -> Policy:
    """One policy; a language-model agent reuses ``models[name]`` when its base model is loaded there."""
    return AgentPool(game, models).make(spec)


def run_config(run_dir: Path) -> RunConfig:
    from detente.config import ConfigError, load_config

    config_path = run_dir / CONFIG
    if not config_path.exists():
        raise ValueError(f"{run_dir} is not a run folder: {config_path} is missing")
    try:
        return load_config(config_path)
    except ConfigError as error:
        raise ValueError(f"{config_path}: {error}") from None
