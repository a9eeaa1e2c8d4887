"""Agent names: one grammar for the command line and for configs, parsed once.

=======================  ================================================================
``tft``, ``random:0.3``  a scripted strategy of the game, with an optional parameter
``run:DIR``              the agent trained in run folder DIR (its last checkpoint);
``run:DIR@N``            its checkpoint after iteration N (llm runs)
``model:NAME``           a language model as it is (``model:smollm2``, a Hugging Face id or folder)
``api:MODEL``            a model behind an OpenAI-compatible endpoint (``$OPENAI_BASE_URL``);
``api:MODEL@ENDPOINT``   the same behind a named endpoint of the config (``endpoints:``)
``human``                a person at the terminal
``self``                 (training co-player only) the learner itself: self-play
``base``                 (training co-player only, llm) the learner's untrained base model
``learner:CONFIG``       (training co-player only) a second live learner trained in the same loop,
                         its learner as config CONFIG (a preset name or a YAML file) says
=======================  ================================================================

:func:`parse_agent` turns a name into an :class:`AgentSpec` or raises
:class:`~detente.errors.ConfigError` listing the valid forms. Which kinds a
place accepts (a training co-player, an evaluation opponent, a seat in
``detente play``) is checked by :func:`check_kind`; whether a scripted name
exists for a game, a run folder or a model is on disk, by
:mod:`detente.agents`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from detente.errors import ConfigError

AgentKind: TypeAlias = Literal["scripted", "run", "model", "api", "human", "self", "base", "learner"]
RUN_PREFIX = "run:"
LEARNER_PREFIX = "learner:"
MODEL_PREFIX = "model:"
API_PREFIX = "api:"
FORMS = ("a scripted strategy of the game (tft, alld, greedy, random:0.3, ...), run:DIR[@N], model:NAME, "
         "api:MODEL[@ENDPOINT], human")
"""The valid forms, for error messages."""
COPLAYER_KINDS: tuple[AgentKind, ...] = ("self", "base", "scripted", "run", "model", "api", "learner")
OPPONENT_KINDS: tuple[AgentKind, ...] = ("scripted", "run", "model", "api")
SEAT_KINDS: tuple[AgentKind, ...] = ("scripted", "run", "model", "api", "human")


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent name."""

    kind: AgentKind
    text: str
    """The name as written (what tables and files show)."""
    value: str = ""
    """scripted: the short name with its parameter (``random:0.3``); run: the folder; model: the name;
    learner: the config (a preset name or a YAML file)."""
    at: int | None = None
    """run: the checkpoint's iteration, None for the last one."""
    endpoint: str | None = None
    """api: the named endpoint of the config, None for the one ``$OPENAI_BASE_URL`` names."""

    @property
    def run_dir(self) -> Path:
        if self.kind != "run":
            raise ValueError(f"{self.text!r} is not a run: agent")
        return Path(self.value)


def parse_agent(text: str) -> AgentSpec:
    """The :class:`AgentSpec` of ``text``; :class:`ConfigError` with the valid forms if it has none."""
    name = text.strip()
    if not name:
        raise ConfigError(f"an agent name is empty; valid forms: {FORMS}")
    if name in _BARE:
        return AgentSpec(_BARE[name], name)
    if name.startswith(RUN_PREFIX):
        folder, sep, at = name.removeprefix(RUN_PREFIX).partition("@")
        if not folder:
            raise ConfigError(f"{name!r}: run: needs a folder, as in run:runs/my_run or run:runs/my_run@10")
        if sep and not at.isdigit():
            raise ConfigError(f"{name!r}: the part after @ must be an iteration number, as in run:DIR@10")
        return AgentSpec("run", name, folder, int(at) if sep else None)
    if name.startswith(LEARNER_PREFIX):
        config = name.removeprefix(LEARNER_PREFIX)
        if not config:
            raise ConfigError(f"{name!r}: learner: needs a config, as in learner:cpu_ipd_adalign or "
                              "learner:my_learner.yaml")
        return AgentSpec("learner", name, config)
    if name.startswith(API_PREFIX):
        rest = name.removeprefix(API_PREFIX)
        model, sep, endpoint = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if not model or (sep and not endpoint):
            raise ConfigError(f"{name!r}: api: needs a model name, as in api:gpt-5-nano or "
                              "api:MODEL@ENDPOINT")
        return AgentSpec("api", name, model, endpoint=endpoint or None)
    if name.startswith(MODEL_PREFIX):
        model = name.removeprefix(MODEL_PREFIX)
        if not model:
            raise ConfigError(f"{name!r}: model: needs a model name, as in model:smollm2")
        return AgentSpec("model", name, model)
    if any(c in name for c in "/\\ ") or name.count(":") > 1:
        raise ConfigError(f"no agent {name!r}; valid forms: {FORMS}")
    return AgentSpec("scripted", name, name)


def check_kind(spec: AgentSpec, allowed: tuple[AgentKind, ...], where: str) -> AgentSpec:
    """``spec`` if its kind may be used ``where`` (e.g. "coplayer"), else :class:`ConfigError`."""
    if spec.kind not in allowed:
        valid = ", ".join(kind_names(allowed))
        raise ConfigError(f"{where}: {spec.text!r} cannot be used here; valid: {valid}")
    return spec


def kind_names(kinds: Iterable[AgentKind]) -> list[str]:
    """How each kind of agent is written, for messages."""
    return [_KIND_NAMES[k] for k in kinds]


_BARE: dict[str, AgentKind] = {"human": "human", "self": "self", "base": "base"}
"""The names that are a kind on their own."""
_KIND_NAMES = {"self": "self", "base": "base", "human": "human", "scripted": "a scripted strategy",
               "run": "run:DIR[@N]", "model": "model:NAME", "api": "api:MODEL[@ENDPOINT]",
               "learner": "learner:CONFIG"}
