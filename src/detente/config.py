"""Run configuration: YAML files validated into typed pydantic models.

Every knob has a description (it is the documentation; ``detente train
--help-config`` prints it). Unknown keys are rejected (``extra="forbid"``),
cross-field rules are checked before anything heavy starts, and ``--set
key.sub=value`` overrides are parsed as YAML scalars and validated the same
way. Where a default comes from the paper's code it says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detente.agent_spec import (
    COPLAYER_KINDS,
    LEARNER_PREFIX,
    OPPONENT_KINDS,
    AgentKind,
    AgentSpec,
    check_kind,
    kind_names,
    parse_agent,
)
from detente.credit import Algorithm
from detente.errors import ConfigError
from detente.games import GAMES, make_game
from detente.games.base import Game
from detente.games.ipd import MatrixGame
from detente.policies.scripted import make_scripted, standard_opponents
from detente.policies.tabular import scripted_table

DEFAULT_LR = {"tabular": 0.1, "llm": 3e-6}
"""Adam learning rate when a config gives none: tabular from docs/reproduction.md, llm from the paper."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- game
class GameConfig(Strict):
    name: str = Field("ipd", description=f"Registered game: {', '.join(GAMES)}.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the game, "
                                   "e.g. {n_rounds: 10, continuation_prob: 0.9}. Naming another game (in a "
                                   "file that extends this one, or --set game.name) drops the params "
                                   "written for this one.")

    @model_validator(mode="after")
    def _buildable(self) -> GameConfig:
        try:
            make_game(self.name, **self.params)
        except TypeError as error:
            raise ValueError(f"game {self.name!r} does not take these params: {error}") from None
        return self


# ---------------------------------------------------------------- agent
class AgentConfig(Strict):
    kind: Literal["tabular", "llm"] = Field("tabular", description="Learner type. tabular: a memory-1 "
                                            "policy for 2x2 matrix games (a logit per previous joint "
                                            "action plus one for the first round). llm: a language "
                                            "model with a LoRA adapter.")
    init_logit: float | tuple[float, float, float, float, float] = Field(
        0.0, description="tabular: initial logit of cooperation in every state (0 = cooperate with "
        "probability 0.5), or five, one per state in table order: first round, CC, CD, DC, DD (own "
        "last move, the other's), e.g. a language model's measured start (scripts/start_policy.py).")
    model: str = Field("smollm2", description="llm: 'smollm2' (the embedded SmolLM2-135M-Instruct) or a "
                       "Hugging Face model name or local path. Paper: Qwen2.5-7B-Instruct.")
    lora_r: int = Field(32, ge=1, description="llm: LoRA rank on every linear layer (paper: 32).")
    lora_alpha: int = Field(64, ge=1, description="llm: LoRA alpha (paper: 64).")
    temperature: float = Field(1.0, ge=0.0, description="llm: sampling temperature T of moves, proposals "
                               "(softmax(score / T) over the legal options) and message tokens (paper: "
                               "1.0). 0 = greedy, for evaluation only: a learner needs T > 0.")
    system_prompt: str | None = Field(None, description="llm: optional system turn at the start of "
                                      "every chat.")
    max_message_tokens: int | None = Field(None, ge=1, description="llm: token limit of a free-text "
                                           "message; None derives it from the game's character limit.")
    act_batch_size: int = Field(16, ge=1, description="llm: chats per forward pass when acting.")
    backend: Literal["transformers", "vllm"] = Field("transformers", description="llm: what computes the "
                                                     "acting policies' numbers: transformers (the packed "
                                                     "forward with KV caches) or vllm (a vLLM engine in this "
                                                     "process: the vllm extra). Training always runs on "
                                                     "transformers + peft.")
    vllm_memory: float | None = Field(None, gt=0, description="llm, vllm backend: GiB of KV cache on a "
                                      "CPU (default 1), or the fraction of GPU memory vLLM may take (default "
                                      "0.4).")

    def policy_options(self) -> dict[str, Any]:
        """The :class:`~detente.policies.llm.LLMPolicy` settings this config gives (the one place they
        are mapped: the trainer, its co-players and ``run:`` agents all act with them)."""
        return {"temperature": self.temperature, "system_prompt": self.system_prompt,
                "batch_size": self.act_batch_size, "max_message_tokens": self.max_message_tokens,
                "backend": self.backend, "vllm_memory": self.vllm_memory}


# ---------------------------------------------------------------- credit
class CreditConfig(Strict):
    algorithm: Algorithm = Field(
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

    @property
    def baseline_group_size(self) -> int | None:
        """Rows per leave-one-out block: K with the group baseline, None (the whole batch) without."""
        return self.group_size if self.group_baseline else None

    @property
    def seed_group_size(self) -> int:
        """Games that share one game seed: K with the group baseline, else 1 (every game its own)."""
        return self.group_size if self.group_baseline else 1


# ---------------------------------------------------------------- train
class TrainConfig(Strict):
    iterations: int = Field(300, ge=1, description="Policy updates (one rollout batch each).")
    games_per_iteration: int = Field(128, ge=2, description="Games played per iteration. Paper code: "
                                     "128 IPD, 64 Split/TAS.")
    lr: float = Field(DEFAULT_LR["tabular"], gt=0.0, description="Adam learning rate. Left out, it is "
                      "0.1 for tabular agents and 3e-6 for llm agents (paper).")
    entropy_coef: float = Field(0.0, ge=0.0, description="eta, entropy bonus. Paper code: 0.01 for IPD "
                                "Advantage Alignment.")
    kl_coef: float = Field(0.0, ge=0.0, description="kappa, weight of the k3 KL to the reference model "
                           "(adapter off). Paper code: 0.001 Split/TAS, 0 IPD. llm only.")
    rho_max: float = Field(2.0, ge=1.0, description="Truncation of the importance weight rho (paper: 2).")
    grad_clip: float = Field(1.0, gt=0.0, description="Gradient-norm clip (paper code: 1.0).")
    epochs: int = Field(1, ge=1, description="Passes over each batch. 1 = the paper's single update; "
                        "> 1 = the proximal variant with PPO clipping on the same credit. llm only.")
    clip_eps: float = Field(0.2, gt=0.0, lt=1.0, description="PPO clip range, used when epochs > 1.")
    micro_batch_tokens: int = Field(512, ge=64, description="llm: tokens per forward/backward of the "
                                    "loss beyond what every chat of the batch shares (forwarded once per "
                                    "update), a micro-batch's own shared prefix counted once (gradients are "
                                    "accumulated over micro-batches; only memory and speed depend on it). "
                                    "Chats are sorted by their tokens first, so a micro-batch holds chats "
                                    "that share long prefixes.")
    share_prefix: bool = Field(True, description="llm: forward the first tokens all chats of the batch "
                               "share (system text, rules) once per update, and those all chats of a "
                               "micro-batch share (common history) once per micro-batch, with gradients, "
                               "instead of once per chat. Exactly the same loss and gradients; off only for "
                               "comparison.")
    gradient_checkpointing: bool = Field(False, description="llm: keep only each decoder layer's input "
                                         "in the loss forward and recompute the rest in the backward "
                                         "(transformers' gradient checkpointing): far less memory for long "
                                         "chats, more compute. The loss forward then runs in train mode, so "
                                         "the model must have no dropout (true of the presets' models).")
    max_nonfinite: int = Field(3, ge=1, description="llm: an update whose loss or gradient holds NaN or "
                               "inf is skipped (counted in nonfinite_steps); after this many skipped in a "
                               "row the run stops, resumable from its last good checkpoint.")
    checkpoint_every: int = Field(10, ge=1, description="llm: keep checkpoints/iter_N every this many "
                                  "iterations (the resume state is saved after every iteration).")
    transcripts: int = Field(4, ge=0, description="llm: games per iteration written to "
                             "transcripts/iter_N.jsonl.")
    tensorboard: bool = Field(False, description="Also write every metric as a TensorBoard scalar in "
                              "<run>/tensorboard/ (needs the tensorboard package: the tensorboard extra); "
                              "watch with `tensorboard --logdir runs`.")


class BufferConfig(Strict):
    """Opponent buffer of SPEC 3: past checkpoints of the learner as co-players."""

    enabled: bool = Field(False, description="Play some games against past checkpoints of the learner "
                          "(paper: on for Advantage Alignment runs). Needs coplayer 'self'.")
    every: int = Field(10, ge=1, description="Add the learner's current adapter to the buffer every this "
                       "many iterations (paper: 10).")
    prob: float = Field(0.5, ge=0.0, le=1.0, description="Probability that a seed group's co-player is a "
                        "past checkpoint rather than the live policy (paper: 0.5). With the buffer on, "
                        "one seat of every group is trained (alternating between groups), so this is "
                        "also the buffer's share of the training rows.")
    max_size: int = Field(28, ge=1, description="Past checkpoints kept loaded as adapters (paper code: "
                          "about 28). When a new snapshot would exceed it, the oldest loaded one is "
                          "unloaded and no longer drawn; every snapshot stays on disk in "
                          "checkpoints/buffer/.")


# ---------------------------------------------------------------- endpoints
class EndpointConfig(Strict):
    """An OpenAI-compatible chat-completions endpoint that ``api:MODEL@NAME`` agents talk to."""

    base_url: str = Field(description="Root of the API, e.g. https://api.openai.com/v1 or "
                          "http://127.0.0.1:8000/v1 (a local vLLM OpenAI server).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Name of the environment variable holding the "
                             "key. The key itself is never written anywhere.")
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once to this endpoint.")
    timeout_s: float = Field(60.0, gt=0, description="Longest wait for the server in one try.")
    max_retries: int = Field(4, ge=0, description="Retries of a timeout, network error, 429 or 5xx "
                             "(exponential backoff with jitter, honouring Retry-After).")
    request_budget: int | None = Field(None, ge=1, description="Most HTTP requests one agent may send in a "
                                       "run, retries included; None: no limit.")
    max_failures: int = Field(3, ge=1, description="Failed requests in a row after which the endpoint counts "
                              "as down and the run stops (with one line; what was written stays).")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature of the API model.")
    max_tokens: int = Field(512, ge=1, description="Longest reply of the API model, in tokens.")
# ---------------------------------------------------------------- rollout
class WorkerResources(Strict):
    """What one Ray rollout worker reserves on its node."""

    num_cpus: float = Field(1.0, gt=0.0, description="CPUs per worker (Ray's num_cpus). The worker runs "
                            "torch on this many threads (at least 1), so the numbers a chunk of games "
                            "gives depend on this value and never on the node it lands on.")
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs per worker (Ray's num_gpus; a fraction shares a "
                            "GPU between workers). A worker that gets a GPU loads its models there in "
                            "bfloat16.")

    @property
    def threads(self) -> int:
        """Torch threads of a worker: the whole CPUs it reserves, at least one."""
        return max(1, int(self.num_cpus))


class RolloutConfig(Strict):
    """Where an llm iteration's games are played: in the trainer's process, or on Ray actors."""

    backend: Literal["local", "ray"] = Field("local", description="local: every game in the trainer's "
                                             "process, all at once. ray: on rollout.workers Ray actors, "
                                             "each holding the base model once and receiving only the "
                                             "learner's LoRA weights after every update (needs the ray "
                                             "extra: pip install 'detente[ray]'). llm only.")
    workers: int = Field(1, ge=1, description="ray: rollout workers (Ray actors, one per GPU or CPU slot). "
                         "The results do not depend on it: a resumed run may change it.")
    resources: WorkerResources = Field(default_factory=WorkerResources)
    chunk_games: int = Field(16, ge=1, description="ray: games per work unit: the iteration's games are cut "
                             "into chunks of whole seed groups, each played as one batch by whichever "
                             "worker is free, so any number of workers computes the same chunks. A "
                             "multiple of the seed-group size (credit.group_size with the group baseline, "
                             "else 1). Smaller chunks spread better over many workers; larger ones batch "
                             "more games per forward.")


class RunConfig(Strict):
    """One experiment: what is played, who learns, how credit is assigned."""

    name: str = Field("run", description="Run name; the default output folder is runs/<name>.")
    seed: int = Field(0, description="Seeds the policy initialisation, sampling and game seeds.")
    game: GameConfig = Field(default_factory=GameConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    coplayer: str = Field("self", description="Who the learner plays: 'self' (self-play; both seats "
                          "share the same parameters), a scripted strategy of the game (e.g. alld), "
                          "'base' (llm: the untrained base model), model:NAME (llm: a language model as "
                          "it is), run:DIR[@N] (a frozen trained agent of the same kind), or "
                          "learner:CONFIG: a second live learner trained in the same loop with its own "
                          "table or LoRA adapter (on the same base model), optimizer and credit rule. "
                          "CONFIG is a preset name or a YAML file (relative to this file, as for "
                          "extends); it must play the same game with the same agent.kind (and "
                          "agent.model), and gives the second learner's agent, credit and train "
                          "update settings (lr, entropy_coef, kl_coef, grad_clip, ...); iterations, "
                          "games per iteration, seed and seating are this config's, and its buffer, "
                          "coplayer and rollout sections are not used. No buffer, and rollout.backend "
                          "local only. Everything but 'self' and learner:CONFIG stays fixed.")
    credit: CreditConfig = Field(default_factory=CreditConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict, description="Named API endpoints for "
                                                 "api:MODEL@NAME agents (co-player, opponents); api:MODEL "
                                                 "without @NAME uses $OPENAI_BASE_URL and $OPENAI_API_KEY.")
    api_cache: bool = Field(True, description="Cache API answers on disk by (model, messages, sampling, "
                            "seed): a repeated evaluation sends no request. false: always ask.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    eval_games: int = Field(200, ge=1, description="Games per opponent in the final evaluation.")
    eval_opponents: list[str] = Field(default_factory=list, description="Opponents of the final "
                                      "cross-play: scripted strategies of the game, run:DIR[@N] or "
                                      "model:NAME. Left out: the game's standard field (ipd and the other "
                                      "matrix games: alld, allc, tft; split: greedy, welfare, fair; "
                                      "trust_split: greedy, truthful, liar; deal: greedy, fair).")

    @model_validator(mode="before")
    @classmethod
    def _standard_opponents(cls, data: Any) -> Any:
        """A config that names no ``eval_opponents`` meets its game's standard field."""
        if not isinstance(data, dict) or data.get("eval_opponents") is not None:
            return data
        game = data.get("game") or {}
        name = game.get("name", "ipd") if isinstance(game, dict) else "ipd"
        if name not in GAMES:
            return data  # the game field reports the unknown name
        return {**data, "eval_opponents": standard_opponents(make_game(name))}

    @model_validator(mode="before")
    @classmethod
    def _default_lr(cls, data: Any) -> Any:
        """An llm config that leaves out ``train.lr`` gets the llm default, not the tabular one."""
        if not isinstance(data, dict):
            return data
        agent, train = data.get("agent") or {}, data.get("train") or {}
        if isinstance(agent, dict) and isinstance(train, dict) and "lr" not in train \
                and agent.get("kind") == "llm":
            data = {**data, "train": {**train, "lr": DEFAULT_LR["llm"]}}
        return data

    @model_validator(mode="after")
    def _agents(self) -> RunConfig:
        """Every agent name parses and fits the game and the learner (files and models: preflight)."""
        game = make_game(self.game.name, **self.game.params)
        if self.agent.kind == "tabular" and not isinstance(game, MatrixGame):
            matrix = ", ".join(name for name in GAMES if isinstance(make_game(name), MatrixGame))
            raise ValueError(f"agent.kind tabular learns 2x2 matrix games ({matrix}), not "
                             f"{self.game.name!r}; use agent.kind llm")
        coplayer = _fits(parse_agent(self.coplayer), COPLAYER_KINDS, game, "coplayer")
        if self.agent.kind == "tabular":
            if coplayer.kind in ("base", "model", "api"):
                raise ValueError(f"coplayer {self.coplayer!r} is a language model; a tabular learner plays "
                                 "self, a scripted strategy or run:DIR of a tabular run")
            if coplayer.kind == "scripted":
                scripted_table(coplayer.value)
        named = [("coplayer", coplayer)]
        for name in self.eval_opponents:
            named.append(("eval_opponents", _fits(parse_agent(name), OPPONENT_KINDS, game, "eval_opponents")))
        for where, spec in named:
            if spec.kind == "api" and spec.endpoint is not None and spec.endpoint not in self.endpoints:
                known = ", ".join(self.endpoints) or "none"
                raise ValueError(f"{where}: {spec.text!r} names endpoint {spec.endpoint!r}, which endpoints "
                                 f"does not define (defined: {known})")
        return self

    @model_validator(mode="after")
    def _cross_field(self) -> RunConfig:
        k, n = self.credit.group_size, self.train.games_per_iteration
        if self.credit.group_baseline and n % k:
            raise ValueError(f"train.games_per_iteration ({n}) must be divisible by "
                             f"credit.group_size ({k}) when credit.group_baseline is on")
        if self.buffer.enabled and self.coplayer != "self":
            raise ValueError(f"buffer.enabled needs coplayer 'self' (got {self.coplayer!r}): the buffer "
                             "holds past checkpoints of a self-playing learner")
        if self.agent.kind == "llm" and self.agent.temperature == 0:
            raise ValueError("agent.temperature 0 (greedy) leaves nothing to learn from: an llm learner "
                             "needs sampling probabilities, so use a temperature > 0 (paper: 1.0)")
        if self.agent.kind == "tabular" and (self.buffer.enabled or self.train.epochs > 1
                                            or self.train.kl_coef > 0):
            raise ValueError("buffer, train.epochs > 1 and train.kl_coef are llm options; the tabular "
                             "learner does not use them")
        self._rollout()
        return self

    def _rollout(self) -> None:
        rollout = self.rollout
        if rollout.backend == "ray" and parse_agent(self.coplayer).kind == "learner":
            raise ValueError(f"rollout.backend ray does not train a learner co-player (coplayer "
                             f"{self.coplayer!r}): both adapters are trained and played in this process; "
                             "use rollout.backend local")
        if rollout.backend == "local":
            placed = rollout.model_dump(exclude_defaults=True).keys() - {"backend"}
            if placed:
                raise ValueError(f"rollout.{sorted(placed)[0]} applies to rollout.backend ray; this run "
                                 "plays locally (rollout.backend local)")
            return
        if self.agent.kind != "llm":
            raise ValueError("rollout.backend ray plays llm games; the tabular learners play in-process")
        K = self.credit.seed_group_size  # games per seed group
        if rollout.chunk_games % K:
            raise ValueError(f"rollout.chunk_games ({rollout.chunk_games}) must be a multiple of the "
                             f"seed-group size ({K}, credit.group_size): a seed group is never split "
                             "between workers")


def _fits(spec: AgentSpec, allowed: tuple[AgentKind, ...], game: Game, where: str) -> AgentSpec:
    """``spec``, after checking that its kind is ``allowed`` ``where`` and that a scripted name exists
    for ``game``."""
    check_kind(spec, allowed, where)
    if spec.kind == "scripted":
        try:
            make_scripted(spec.value, game)
        except ConfigError as error:
            others = ", ".join(kind_names(k for k in allowed if k != "scripted"))
            raise ValueError(f"{where}: {error}; or {others}") from None
    return spec


# ---------------------------------------------------------------- contrast jobs
class ContrastConfig(Strict):
    """Runs trained side by side on one game, then one cross-play of all of them against a field and
    each other (the main job: naive RL against Advantage Alignment on the same seed and budget)."""

    name: str = Field("contrast", description="Job name; the default output folder is runs/<name>, "
                      "each run in runs/<name>/<label>/.")
    contrast: dict[str, str] = Field(description="label -> preset name or config file (relative to this "
                                     "file) of each run; the runs must play the same game.")
    eval_games: int = Field(8, ge=1, description="Games per pairing in the joint cross-play.")
    eval_opponents: list[str] | None = Field(None, description=(
        "The field the trained agents meet besides themselves and each other. Left out: the first "
        "run's eval_opponents (by default its game's standard field; ipd: alld, allc, tft)."))

    @model_validator(mode="after")
    def _labels(self) -> ContrastConfig:
        if len(self.contrast) < 2:
            raise ValueError("contrast needs at least two runs (label: preset or config file)")
        for label in self.contrast:
            if not label.isidentifier():
                raise ValueError(f"contrast label {label!r} must be a plain name (it is a folder name)")
            if label in CONTRAST_RESULT_KEYS:
                raise ValueError(f"contrast label {label!r} is a key of contrast.json; choose another")
        return self


class ContrastJob(BaseModel):
    """A contrast config with each of its runs' configs loaded (``--set`` overrides applied)."""

    model_config = ConfigDict(frozen=True)
    config: ContrastConfig
    runs: dict[str, RunConfig]

    def crossplay_config(self) -> RunConfig:
        """The first run's config meeting the job's opponents: the joint cross-play's agents are
        checked with it (:func:`detente.agents.preflight`)."""
        first = next(iter(self.runs.values()))
        opponents = self.config.eval_opponents
        endpoints = {key: value for run in self.runs.values() for key, value in run.endpoints.items()}
        data = {**first.model_dump(), "eval_opponents": opponents or first.eval_opponents,
                "endpoints": {key: value.model_dump() for key, value in endpoints.items()}}
        try:
            return RunConfig.model_validate(data)
        except ValidationError as error:
            raise ConfigError(validation_message(error)) from None


CONTRAST = "contrast"
"""The key that makes a config file a :class:`ContrastConfig` instead of a :class:`RunConfig`."""
CONTRAST_RESULT_KEYS = ("n_rounds", "tft_vs_alld", "bars")
"""The top-level keys of ``contrast.json`` beside the run labels."""


def load_job(path: Path, overrides: Sequence[str] = ()) -> RunConfig | ContrastJob:
    """A run config, or a contrast job when the file has a ``contrast`` key.

    In a contrast job an override ``LABEL.key=value`` goes to that run, one naming a contrast key
    (``eval_games=4``) to the job, and any other to every run (``train.iterations=2``)."""
    data = _read(Path(path), seen=())
    if CONTRAST not in data:
        return load_config(path, overrides)
    mine, theirs = [], []
    for override in overrides:
        (mine if override.partition("=")[0].split(".")[0] in ContrastConfig.model_fields else theirs)\
            .append(override)
    data = _with_overrides(data, mine)
    try:
        config = ContrastConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {validation_message(error)}") from None
    runs = {}
    for label, name in config.contrast.items():
        own = [o.removeprefix(f"{label}.") for o in theirs if o.startswith(f"{label}.")]
        every = [o for o in theirs if o.split(".")[0] not in config.contrast]
        runs[label] = load_config(_relative(Path(path), name), [*every, *own])
    games = {label: (run.game.name, run.game.params) for label, run in runs.items()}
    if len({repr(game) for game in games.values()}) > 1:
        raise ConfigError(f"{path}: the runs of a contrast must play the same game; they play "
                          + ", ".join(f"{label}: {name} {params}" for label, (name, params) in games.items()))
    job = ContrastJob(config=config, runs=runs)
    job.crossplay_config()  # the field fits the game
    return job


def _relative(path: Path, name: str) -> Path:
    """A config named from ``path``: a file beside it, else a preset."""
    beside = path.parent / f"{name.removesuffix('.yaml')}.yaml"
    return beside if beside.exists() else preset_path(name)


RESUMABLE = ("rollout.workers",)
"""Keys a resumed run may change without ``--force``: where its games run, not what they give."""

EXTENDS = "extends"
"""Config key naming a preset (or a file, relative to this one) whose values this file overrides."""


def load_config(path: Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``key.sub=value`` overrides.

    A ``coplayer: learner:CONFIG`` is located from ``path``'s folder (the working folder without
    ``path``) and kept as a preset name or an absolute path; the second learner's config is loaded
    and checked against this one (:func:`coplayer_learner`)."""
    data = _with_overrides(_read(Path(path), seen=()) if path is not None else {}, overrides)
    _locate_learner(data, Path(path) if path is not None else Path.cwd() / CONFIG_NAME)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(validation_message(error)) from None
    coplayer_learner(config)
    return config


CONFIG_NAME = "config.yaml"
"""A config file's name where none is given (``load_config(None)`` locates files from the working
folder as if it held one)."""


# ---------------------------------------------------------------- a learner co-player
def _locate_learner(data: dict[str, Any], path: Path) -> None:
    """Rewrite ``coplayer: learner:CONFIG`` so that it names the same config from any folder: a file
    beside ``path`` (as ``extends`` finds one) as its absolute path, else a preset by its name."""
    name = data.get("coplayer")
    if not isinstance(name, str) or not name.startswith(LEARNER_PREFIX) or name == LEARNER_PREFIX:
        return
    target = name.removeprefix(LEARNER_PREFIX).strip()
    beside = path.parent / f"{target.removesuffix('.yaml')}.yaml"
    if beside.is_file() and beside.resolve().parent != _preset_folder():
        data["coplayer"] = LEARNER_PREFIX + str(beside.resolve())
        return
    preset = _learner_file(Path(target).stem if beside.is_file() else target, f"coplayer {name!r}")
    data["coplayer"] = LEARNER_PREFIX + preset.stem


def _learner_file(target: str, where: str) -> Path:
    """The file a located ``learner:`` target names: an absolute path, or a preset."""
    if Path(target).is_absolute():
        if not Path(target).is_file():
            raise ConfigError(f"{where}: no config file {target}")
        return Path(target)
    try:
        return preset_path(target)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def coplayer_learner(config: RunConfig) -> RunConfig | None:
    """The config of the second live learner ``config.coplayer`` names (``learner:CONFIG``), checked
    against ``config`` (:func:`pair_problem`); None for any other co-player."""
    spec = parse_agent(config.coplayer)
    if spec.kind != "learner":
        return None
    where = f"coplayer {config.coplayer!r}"
    path = _learner_file(spec.value, where)
    try:
        learner = RunConfig.model_validate(_read(path, seen=()))
    except ValidationError as error:
        raise ConfigError(f"{where}: {validation_message(error)}") from None
    problem = pair_problem(config, learner)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    return learner


def pair_problem(main: RunConfig, second: RunConfig) -> str | None:
    """Why ``second`` cannot be trained beside ``main`` as its learner co-player (None if it can): both
    play one game with one kind of agent (llm: adapters on one base model), and the second learner's
    baseline groups fit the main learner's batch (:func:`baseline_problem`)."""
    if parse_agent(second.coplayer).kind == "learner":
        return (f"its own coplayer is {second.coplayer!r}; a learner co-player plays the main learner, so "
                "it names no learner of its own")
    if (second.game.name, second.game.params) != (main.game.name, main.game.params):
        return (f"it plays {second.game.name} {second.game.params} and the main learner "
                f"{main.game.name} {main.game.params}; both learners must play the same game")
    if second.agent.kind != main.agent.kind:
        return (f"its agent.kind is {second.agent.kind} and the main learner's {main.agent.kind}; both "
                "learners must be of the same kind")
    if main.agent.kind == "llm" and second.agent.model != main.agent.model:
        return (f"its agent.model is {second.agent.model!r} and the main learner's {main.agent.model!r}; "
                "both adapters sit on one base model")
    return baseline_problem(main, second)


def baseline_problem(main: RunConfig, second: RunConfig) -> str | None:
    """Why the second learner's leave-one-out groups do not fit the main learner's batch (None if
    they do): they divide its games, and where games differ by seed (random lengths, hands, values)
    they are the main learner's seed groups."""
    n, k = main.train.games_per_iteration, second.credit.baseline_group_size
    if k is not None and n % k:
        return (f"the second learner's credit.group_size ({k}) must divide the main learner's "
                f"train.games_per_iteration ({n})")
    game = make_game(main.game.name, **main.game.params)
    fixed = isinstance(game, MatrixGame) and game.continuation_prob is None
    if not fixed and k != main.credit.baseline_group_size:
        return (f"the games' randomness is drawn per seed group of the main learner "
                f"({main.credit.baseline_group_size or 'the whole batch'}); the second learner's "
                f"baseline groups ({k or 'the whole batch'}) must be the same")
    return None


def validation_message(error: ValidationError) -> str:
    """The first problem of a pydantic error as one line: ``field.sub: what is wrong`` (a cross-field
    check names its fields itself)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _read(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The mapping in ``path``, on top of the file its ``extends`` key names (recursively)."""
    if path.resolve() in seen:
        raise ConfigError(f"config {path} extends itself (through {' -> '.join(map(str, seen))})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of keys to values")
    parent = data.pop(EXTENDS, None)
    if parent is None:
        return data
    base = _read(_relative(path, str(parent)), (*seen, path.resolve()))
    return _merge(_without_replaced_game_params(base, data), data)


def _without_replaced_game_params(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` without its ``game.params`` when ``top`` names another game: params belong to the
    game they were written for, so ``--set game.name=split`` on an IPD preset with ``recap: true``
    plays Split with Split's defaults and only the params ``top`` gives."""
    default = GameConfig.model_fields["name"].default
    base_game, top_game = base.get("game"), top.get("game")
    if isinstance(base_game, dict) and isinstance(top_game, dict) and "name" in top_game \
            and top_game["name"] != base_game.get("name", default):
        return {**base, "game": {k: v for k, v in base_game.items() if k != "params"}}
    return base


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section (a mapping merges, anything else replaces)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _preset_folder() -> Path:
    return Path(str(resources.files("detente") / "configs")).resolve()


def preset_path(name: str) -> Path:
    """The preset config shipped with detente called ``name`` (``ipd_tabular_naive``)."""
    folder = resources.files("detente") / "configs"
    preset = folder / f"{name.removesuffix('.yaml')}.yaml"
    if not preset.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise ConfigError(f"no config file {name!r} and no preset of that name; presets: {', '.join(known)}")
    return Path(str(preset))


def _with_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with each ``key.sub=value`` override setting its key (a mapping value replaces the
    section it names). An override naming another game first drops ``data``'s game params
    (:func:`_without_replaced_game_params`), so ``game.name`` and ``game.params`` hold in either order."""
    parsed = [(override, *_parse_override(override)) for override in overrides]
    named: dict[str, Any] = {}
    for override, keys, value in parsed:
        _set(named, keys, value, override)
    data = _without_replaced_game_params(data, named)
    for override, keys, value in parsed:
        _set(data, keys, value, override)
    return data


def _parse_override(override: str) -> tuple[list[str], Any]:
    """``key.sub=value`` as its key path and its YAML value."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    try:
        return key.split("."), yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"override {override!r}: cannot parse value {raw!r}") from None


def _set(data: dict[str, Any], keys: list[str], value: Any, override: str) -> None:
    *parents, leaf = keys
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
        node = child
    node[leaf] = value


def config_help(model: type[BaseModel], prefix: str = "") -> str:
    """Every key of ``model`` (nested sections as ``section.key``) with its type, default and
    description: what ``detente train --help-config`` prints, generated from the fields."""
    lines = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{key}:  (section)")
            lines.append(config_help(annotation, f"{key}.").rstrip("\n"))
            continue
        default = info.get_default(call_default_factory=True)
        kind = (annotation.__name__ if isinstance(annotation, type)
                else str(annotation).replace("typing.", ""))
        lines.append(f"{key}:  {kind} = {default!r}")
        if info.description:
            lines.append(f"    {info.description}")
    return "\n".join(lines) + "\n"


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
