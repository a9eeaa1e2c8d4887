"""Run configuration: YAML files validated into typed pydantic models.

Every knob has a description (it is the documentation; ``detente train
--help-config`` prints it). Unknown keys are rejected (``extra="forbid"``),
cross-field rules are checked before anything heavy starts, and ``--set
key.sub=value`` overrides are parsed as YAML scalars and validated the same
way. Where a default comes from the paper's code it says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from detente.games import make_game


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- game
class GameConfig(Strict):
    name: str = Field("ipd", description="Registered game: ipd, stag_hunt, chicken, matrix, split, "
                      "trust_split, deal.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the game, "
                                   "e.g. {n_rounds: 10, continuation_prob: 0.9}.")

    @model_validator(mode="after")
    def _buildable(self) -> GameConfig:
        try:
            make_game(self.name, **self.params)
        except TypeError as error:
            raise ValueError(f"game {self.name!r} does not take these params: {error}") from None
        return self


# ---------------------------------------------------------------- agent
class AgentConfig(Strict):
    kind: Literal["tabular"] = Field("tabular", description="Learner type. tabular: a memory-1 policy "
                                     "for 2x2 matrix games (a logit per previous joint action plus "
                                     "one for the first round).")
    init_logit: float = Field(0.0, description="Initial logit of cooperation in every state "
                              "(0 = cooperate with probability 0.5).")


# ---------------------------------------------------------------- credit
class CreditConfig(Strict):
    algorithm: Literal["naive", "sum_rewards", "adalign"] = Field(
        "adalign", description="Credit rule (SPEC 3). naive: own advantage; sum_rewards: own + "
        "co-player's advantage; adalign: Advantage Alignment.")
    gamma: float = Field(0.9, ge=0.0, le=1.0, description="Discount. Paper code: 0.9 IPD and Split, "
                         "0.96 Trust-and-Split.")
    beta: float = Field(0.5, ge=0.0, description="Advantage Alignment strength. Paper code: 0.5 IPD, "
                        "1.0 Split, 2.0 Trust-and-Split. Unused by other algorithms.")
    reward_scale: float | None = Field(None, gt=0.0, description="Rewards are divided by this constant "
                                       "c. None: the game's own (paper code: 5 IPD, 100 Split/TAS).")
    group_baseline: bool = Field(True, description="Leave-one-out baseline within seed groups of "
                                 "group_size games sharing environment randomness. False: leave-one-out "
                                 "over the whole batch (the ablation).")
    group_size: int = Field(8, ge=2, description="K games per seed group; K >= 2 for leave-one-out. "
                            "Paper code: 8 for Split and TAS.")


# ---------------------------------------------------------------- train
class TrainConfig(Strict):
    iterations: int = Field(300, ge=1, description="Policy updates (one rollout batch each).")
    games_per_iteration: int = Field(128, ge=2, description="Games played per iteration. Paper code: "
                                     "128 IPD, 64 Split/TAS.")
    lr: float = Field(0.1, gt=0.0, description="Adam learning rate.")
    entropy_coef: float = Field(0.0, ge=0.0, description="eta, entropy bonus. Paper code: 0.01 for IPD "
                                "Advantage Alignment.")
    grad_clip: float = Field(1.0, gt=0.0, description="Gradient-norm clip (paper code: 1.0).")


class RunConfig(Strict):
    """One experiment: what is played, who learns, how credit is assigned."""

    name: str = Field("run", description="Run name; the default output folder is runs/<name>.")
    seed: int = Field(0, description="Seeds the policy initialisation, sampling and game seeds.")
    game: GameConfig = Field(default_factory=GameConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    coplayer: str = Field("self", description="Who the learner plays: 'self' (self-play; both seats "
                          "share and train the same parameters) or a scripted strategy (e.g. alld), "
                          "which stays fixed.")
    credit: CreditConfig = Field(default_factory=CreditConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval_games: int = Field(200, ge=1, description="Games per opponent in the final evaluation.")
    eval_opponents: list[str] = Field(default_factory=lambda: ["alld", "allc", "tft"],
                                      description="Scripted opponents of the final evaluation.")

    @field_validator("coplayer")
    @classmethod
    def _coplayer_nonempty(cls, value: str) -> str:
        if not value:
            raise ValueError("coplayer must be 'self' or a scripted strategy name")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> RunConfig:
        k, n = self.credit.group_size, self.train.games_per_iteration
        if self.credit.group_baseline and n % k:
            raise ValueError(f"train.games_per_iteration ({n}) must be divisible by "
                             f"credit.group_size ({k}) when credit.group_baseline is on")
        return self


class ConfigError(ValueError):
    """A config file or override is wrong; the message is one line for the user."""


def load_config(path: Path | None, overrides: list[str] = ()) -> RunConfig:  # type: ignore[assignment]
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``key.sub=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read config {path}: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping of keys to values")
    for override in overrides:
        _apply_override(data, override)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"{where}: {first['msg']}") from None


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"override {override!r}: cannot parse value {raw!r}") from None
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
        node = child
    node[leaf] = value


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
