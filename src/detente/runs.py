"""A run on disk: the layout of run and eval folders, and a typed record for every file in them.

Everything that reads or writes a run folder goes through this module::

    runs/<name>/
      run.json                  RunInfo: detente's version, the game and its version
      config.yaml               the RunConfig (read_config / write_config)
      coplayer_config.yaml      a learner co-player's RunConfig (write_configs), which config.yaml
                                then names as coplayer: learner:coplayer_config.yaml
      metrics.jsonl             one MetricsLine per iteration, appended (append_metrics)
      checkpoints/latest.json   CheckpointPointer: the resume point (llm runs)
      checkpoints/iter_N/       adapter/ (peft LoRA folder), state.pt, config.yaml; with a learner
                                co-player also coplayer/ (its peft LoRA folder), coplayer_config.yaml
      checkpoints/buffer/past-N opponent-buffer snapshots (peft LoRA folders)
      policy.json               TabularPolicyFile (tabular runs; coplayer_policy.json for a pair's B)
      matrix.json               CrossPlayRecord: a cross-play tournament
      transcripts/iter_N.jsonl  TranscriptLine per sampled training game
      transcripts/crossplay.jsonl  TranscriptLine per kept cross-play game
      report.html, exploit.json, axelrod.json, tensorboard/

    runs/<contrast>/            a contrast job (the main job): one run folder per label,
      config.yaml, run.json     the ContrastConfig
      naive/, adalign/          each a run folder as above
      matrix.json, contrast.json  the joint cross-play and ContrastRecord

    runs/play/<time>/           one game a person played (detente play, detente serve):
      run.json, transcripts/crossplay.jsonl

Records are pydantic models: reading validates, so a reader gets typed values or a
:class:`RunFileError` naming the file, never half-checked dictionaries. Adapter and optimizer
files are the training backend's binary formats; this module names their paths. All writes are
atomic (:mod:`detente.atomic`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detente import __version__
from detente.agent_spec import LEARNER_PREFIX
from detente.atomic import append_line, read_lines, write_atomic
from detente.config import CONTRAST_RESULT_KEYS, RunConfig, dump_config, load_config
from detente.errors import UserError
from detente.games.base import Game
from detente.policies.tabular import STATES, sigmoid

RUN_INFO = "run.json"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
"""``checkpoints/latest.json``: which checkpoint folder holds the resume state of an llm run."""
ADAPTER_DIR = "adapter"
"""An llm checkpoint's LoRA adapter folder: ``checkpoints/iter_N/adapter``."""
COPLAYER_ADAPTER_DIR = "coplayer"
"""A checkpoint's folder of a learner co-player's adapter (beside the learner's ``adapter/``)."""
STATE_FILE = "state.pt"
"""An llm checkpoint's optimizer, RNG and buffer state: ``checkpoints/iter_N/state.pt``."""
BUFFER_DIR = "buffer"
"""Opponent-buffer snapshots: ``checkpoints/buffer/past-N``."""
POLICY_FILE = "policy.json"
COPLAYER_POLICY_FILE = "coplayer_policy.json"
COPLAYER_CONFIG = "coplayer_config.yaml"
MATRIX = "matrix.json"
TRANSCRIPTS = "transcripts"
CROSSPLAY_TRANSCRIPTS = f"{TRANSCRIPTS}/crossplay.jsonl"
REPORT = "report.html"
EXPLOIT = "exploit.json"
AXELROD = "axelrod.json"
CONTRAST_FILE = "contrast.json"
TENSORBOARD = "tensorboard"
PLAY_ROOT = Path("runs") / "play"
"""Where ``detente play`` and ``detente serve`` save finished games by default, one folder each."""


class RunFileError(UserError, ValueError):
    """A run-folder file is missing or does not hold what its record says."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse(record: type[Record], path: Path, data: Any) -> Any:
    try:
        return record.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RunFileError(f"{path}: {where + ': ' if where else ''}{first['msg']}") from None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise RunFileError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RunFileError(f"{path} is not JSON: {error}") from None


# ---------------------------------------------------------------- run.json
Producer = Literal["llm", "tabular", "tabular_pair", "lola", "eval", "contrast"]


class RunInfo(Record):
    """What produced a run or eval folder: the trainer (or ``eval``), detente's version, the game and
    its rules version. A folder whose producer is a tabular trainer holds its agent in ``policy.json``."""

    producer: Producer
    detente_version: str
    game: str
    game_version: int

    @property
    def tabular(self) -> bool:
        return self.producer in ("tabular", "tabular_pair", "lola")


def write_run_info(folder: Path, producer: Producer, game: Game) -> RunInfo:
    info = RunInfo(producer=producer, detente_version=__version__, game=game.name, game_version=game.version)
    write_atomic(Path(folder) / RUN_INFO, info.model_dump_json(indent=2) + "\n")
    return info


def read_run_info(folder: Path) -> RunInfo:
    path = Path(folder) / RUN_INFO
    return _parse(RunInfo, path, _read_json(path))


# ---------------------------------------------------------------- config.yaml
def write_config(folder: Path, config: BaseModel, name: str = CONFIG) -> None:
    """Write a run's config (a :class:`RunConfig`, or another trainer's own config model) as YAML."""
    write_atomic(Path(folder) / name, dump_config(config))


def write_configs(folder: Path, config: RunConfig, coplayer: RunConfig | None = None) -> None:
    """``config.yaml`` and, given a second learner's ``coplayer`` config, ``coplayer_config.yaml``; a
    ``learner:`` co-player is then stored as that file (:func:`stored_config`), so that the folder reads
    without the files its run was started from."""
    if coplayer is not None:
        write_config(folder, coplayer, COPLAYER_CONFIG)
    write_config(folder, stored_config(config) if coplayer is not None else config)


def stored_config(config: RunConfig) -> RunConfig:
    """``config`` as a run folder stores it: ``coplayer: learner:CONFIG`` names the copy of CONFIG beside
    it, ``learner:coplayer_config.yaml``."""
    if not config.coplayer.startswith(LEARNER_PREFIX):
        return config
    return config.model_copy(update={"coplayer": LEARNER_PREFIX + COPLAYER_CONFIG})


def read_config(folder: Path, name: str = CONFIG) -> RunConfig:
    """The run config in ``folder`` (a ConfigError, one line, if it is missing or wrong)."""
    from detente.errors import ConfigError

    path = Path(folder) / name
    if not path.is_file():
        raise ConfigError(f"{folder} is not a run folder: {path} is missing")
    try:
        return load_config(path)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def read_config_text(folder: Path) -> str | None:
    """``config.yaml`` as written, or None without one (for a report)."""
    path = Path(folder) / CONFIG
    return path.read_text() if path.is_file() else None


def read_config_data(path: Path) -> dict[str, Any]:
    """A config file as plain data, not validated (what a checkpoint was trained with); a
    :class:`RunFileError` if it is not YAML."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise RunFileError(f"{path} is not YAML: {error}") from None
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- metrics.jsonl
NAMESPACES = ("reward/", "behaviour/", "loss/", "data/", "policy/", "perf/", "coplayer/")
"""Every metric name but ``iteration`` starts with one of these (the schema of both trainers):

* ``reward/learner``, ``reward/coplayer``: mean unscaled reward per round;
* ``behaviour/*``: the learner's behaviour figures (:mod:`detente.behaviour`);
* ``loss/policy``, ``loss/kl``, ``loss/entropy``, ``loss/clip_frac``, ``loss/grad_norm``,
  ``loss/nonfinite_steps``: the update;
* ``data/*``: what the update was made of (terms, tokens, invalid rate, lost steps...);
* ``policy/*``: a tabular policy's probabilities;
* ``perf/*``: timings and run-shape facts (seconds, workers): they may differ between two runs
  that are otherwise identical;
* ``coplayer/<namespace>/*``: the same figures of a second learner trained alongside
  (:data:`COPLAYER_PREFIX`; its reward is ``reward/coplayer``).
"""
COPLAYER_PREFIX = "coplayer/"
"""Prefix of a second learner's figures in ``metrics.jsonl``; the main learner's have none."""


def coplayer_figures(values: dict[str, Any]) -> dict[str, Any]:
    """A second learner's own figures as its metrics name them: under :data:`COPLAYER_PREFIX`, its
    ``reward/*`` left out (from its side they are the main learner's ``reward/coplayer`` and
    ``reward/learner``)."""
    return {COPLAYER_PREFIX + key: value for key, value in values.items() if not key.startswith("reward/")}


class MetricsLine(Record):
    """One line of ``metrics.jsonl``: an iteration and its namespaced figures."""

    iteration: int = Field(ge=0)
    values: dict[str, float | int | None]

    @field_validator("values")
    @classmethod
    def _namespaced(cls, values: dict[str, Any]) -> dict[str, Any]:
        bad = [key for key in values if not key.startswith(NAMESPACES)]
        if bad:
            raise ValueError(f"metric names must start with one of {', '.join(NAMESPACES)}; got {bad[:3]}")
        return values

    def to_json(self) -> dict[str, Any]:
        return {"iteration": self.iteration, **self.values}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricsLine:
        values = {k: v for k, v in data.items() if k != "iteration"}
        return cls(iteration=data.get("iteration", -1), values=values)

    def without_perf(self) -> dict[str, Any]:
        """The line without ``perf/*`` figures: what two equal runs share."""
        return {k: v for k, v in self.to_json().items() if not k.startswith("perf/")}


def append_metrics(folder: Path, line: MetricsLine) -> None:
    append_line(Path(folder) / METRICS, json.dumps(line.to_json()))


def read_metrics(folder: Path, *, tolerate_torn_tail: bool = False) -> list[MetricsLine]:
    """Every line of ``metrics.jsonl`` ([] without the file); ``tolerate_torn_tail`` drops a last line a
    kill cut short."""
    path = Path(folder) / METRICS
    lines = read_lines(path, tolerate_torn_tail=tolerate_torn_tail)
    out = []
    for i, text in enumerate(lines):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            if tolerate_torn_tail and i == len(lines) - 1:
                break
            raise RunFileError(f"{path} line {i + 1} is not JSON: {error}") from None
        out.append(_parse(MetricsLine, path, {"iteration": data.get("iteration", -1),
                                              "values": {k: v for k, v in data.items() if k != "iteration"}}))
    return out


def scan_metrics(folder: Path) -> tuple[list[MetricsLine], int]:
    """The readable lines of ``metrics.jsonl`` and how many were not a metrics line (for a report)."""
    lines, bad = [], 0
    for text in read_lines(Path(folder) / METRICS):
        try:
            data = json.loads(text)
            lines.append(MetricsLine.from_json(data))
        except (json.JSONDecodeError, ValidationError, AttributeError):
            bad += 1
    return lines, bad


def write_metrics(folder: Path, lines: list[MetricsLine]) -> None:
    """Replace ``metrics.jsonl`` with ``lines`` (a fresh run: none; a resume: those it keeps)."""
    write_atomic(Path(folder) / METRICS, "".join(json.dumps(line.to_json()) + "\n" for line in lines))


# ---------------------------------------------------------------- checkpoints
class CheckpointPointer(Record):
    """``checkpoints/latest.json``: the resume point is ``checkpoints/<folder>``."""

    iteration: int = Field(ge=0)
    folder: str


def checkpoint_dir(folder: Path, iteration: int) -> Path:
    """``checkpoints/iter_N``: the state after ``iteration`` iterations."""
    return Path(folder) / CHECKPOINTS / f"iter_{iteration}"


def write_latest(folder: Path, iteration: int) -> None:
    """Point ``checkpoints/latest.json`` at ``checkpoints/iter_<iteration>`` (atomic)."""
    pointer = CheckpointPointer(iteration=iteration, folder=checkpoint_dir(folder, iteration).name)
    write_atomic(Path(folder) / CHECKPOINTS / LATEST, pointer.model_dump_json())


def read_latest(folder: Path) -> Path | None:
    """The checkpoint folder ``checkpoints/latest.json`` points to, or None."""
    path = Path(folder) / CHECKPOINTS / LATEST
    if not path.exists():
        return None
    pointer = _parse(CheckpointPointer, path, _read_json(path))
    return path.parent / pointer.folder


def write_state(checkpoint: Path, data: bytes) -> None:
    """A checkpoint's ``state.pt`` (the trainer serialises it; written atomically, fsynced)."""
    write_atomic(Path(checkpoint) / STATE_FILE, data)


def state_path(checkpoint: Path) -> Path:
    """Where a checkpoint's ``state.pt`` is, for the trainer's ``torch.load``."""
    return Path(checkpoint) / STATE_FILE


# ---------------------------------------------------------------- report.html
def write_page(path: Path, html: str) -> None:
    """A report page (``report.html`` in its folder, or wherever ``--out`` says)."""
    write_atomic(Path(path), html)


# ---------------------------------------------------------------- policy.json (tabular)
TABULAR_FORMAT = "detente.tabular.memory1/1"


class TabularPolicyFile(Record):
    """A memory-1 table: P(cooperate) per state, and the logits it came from."""

    format: str = TABULAR_FORMAT
    game: str
    states: list[str] = Field(default_factory=lambda: list(STATES))
    cooperate_prob: list[float]
    logits: list[float]

    @field_validator("cooperate_prob")
    @classmethod
    def _probabilities(cls, values: list[float]) -> list[float]:
        if len(values) != len(STATES) or not all(0.0 <= p <= 1.0 for p in values):
            raise ValueError(f"need {len(STATES)} probabilities in [0, 1], got {values}")
        return values

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != TABULAR_FORMAT:
            raise ValueError(f"expected format {TABULAR_FORMAT!r}, got {value!r}")
        return value

    @classmethod
    def from_logits(cls, logits: list[float], game: str) -> TabularPolicyFile:
        return cls(game=game, cooperate_prob=[sigmoid(x) for x in logits], logits=list(logits))


def write_policy(folder: Path, policy: TabularPolicyFile, name: str = POLICY_FILE) -> None:
    write_atomic(Path(folder) / name, policy.model_dump_json(indent=2) + "\n")


def read_policy(folder: Path, name: str = POLICY_FILE) -> TabularPolicyFile:
    path = Path(folder) / name
    if not path.is_file():
        raise RunFileError(f"no {name} in {folder}: not a finished tabular training run")
    return _parse(TabularPolicyFile, path, _read_json(path))


# ---------------------------------------------------------------- matrix.json
Figures = dict[str, float | None]


class CrossPlayStats(Record):
    welfare: list[list[float]]
    """Mean per-round total reward of both players in each pairing."""
    efficiency: list[list[float | None]]
    """Realised total / best possible total of each pairing's games (None: no best total)."""
    round_robin: list[float]
    """Each row agent's mean reward per round, averaged over all columns."""
    invalid_rate: list[float]
    behaviour: dict[str, Figures] = Field(default_factory=dict)
    """Each agent's behaviour figures over all its games (:mod:`detente.behaviour`)."""
    self_play: dict[str, Figures] = Field(default_factory=dict)
    """Each agent's behaviour figures over its games against itself (both seats)."""
    versus_others: dict[str, Figures] = Field(default_factory=dict)
    """Each agent's behaviour figures over its games against the other agents."""


class CrossPlayRecord(Record):
    """``matrix.json``: a cross-play tournament (:func:`detente.eval.tournament.cross_play`)."""

    game: str
    game_version: int | None = None
    agents: list[str]
    games_per_pair: int
    mean_reward: list[list[float]]
    """``mean_reward[i][j]``: mean per-round reward of agent i against agent j."""
    ci95: list[list[float]]
    """Half-width of the normal 95% interval of each cell."""
    stats: CrossPlayStats

    def index(self, agent: str) -> int:
        return self.agents.index(agent)


def write_crossplay(folder: Path, record: CrossPlayRecord, transcripts: list[TranscriptLine]) -> None:
    """``matrix.json`` and, if any games were kept, ``transcripts/crossplay.jsonl``."""
    write_atomic(Path(folder) / MATRIX, record.model_dump_json(indent=2) + "\n")
    if transcripts:
        write_transcripts(Path(folder) / CROSSPLAY_TRANSCRIPTS, transcripts)


def write_result(folder: Path, name: str, data: dict[str, Any]) -> Path:
    """A result file of a command (``exploit.json``, ``axelrod.json``): JSON, atomic."""
    path = Path(folder) / name
    write_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


def read_crossplay(folder: Path) -> CrossPlayRecord:
    path = Path(folder) / MATRIX
    return _parse(CrossPlayRecord, path, _read_json(path))


# ---------------------------------------------------------------- contrast.json
class ContrastBar(Record):
    """One bar of the claim (:data:`detente.eval.contrast.BARS`): a run's figure against a threshold."""

    run: str
    figure: str
    comparison: Literal["<=", ">="]
    threshold: float
    value: float | None
    met: bool


class ContrastRecord(Record):
    """``contrast.json`` of a contrast job (:mod:`detente.eval.contrast`). On disk the runs' figures sit
    at the top level, one object per label, beside ``n_rounds``, ``tft_vs_alld`` and ``bars``."""

    runs: dict[str, Figures]
    n_rounds: int
    tft_vs_alld: float | None
    bars: list[ContrastBar] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.runs, "n_rounds": self.n_rounds, "tft_vs_alld": self.tft_vs_alld,
                "bars": [bar.model_dump() for bar in self.bars]}

    @classmethod
    def from_json(cls, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            return data
        top = {key: data[key] for key in CONTRAST_RESULT_KEYS if key in data}
        return {**top, "runs": {key: value for key, value in data.items() if key not in CONTRAST_RESULT_KEYS}}


def write_contrast(folder: Path, record: ContrastRecord) -> Path:
    return write_result(folder, CONTRAST_FILE, record.to_json())


def read_contrast(folder: Path) -> ContrastRecord:
    path = Path(folder) / CONTRAST_FILE
    return _parse(ContrastRecord, path, ContrastRecord.from_json(_read_json(path)))


# ---------------------------------------------------------------- transcripts
class DecisionLine(Record):
    round: int
    seat: int
    raw: str
    valid: bool


class TranscriptLine(Record):
    """One game as the report shows it: players, per-round rewards, decisions, each seat's chat."""

    slot: int
    players: list[str]
    round_rewards: list[tuple[float, float]]
    decisions: list[DecisionLine]
    chats: dict[int, list[dict[str, str]]] = Field(default_factory=dict)
    """Seat -> the role/content messages of the chat it kept (language-model players only)."""
    iteration: int | None = None
    seed: int | None = None
    trained_seats: list[int] = Field(default_factory=list)


def transcript_path(folder: Path, iteration: int) -> Path:
    return Path(folder) / TRANSCRIPTS / f"iter_{iteration}.jsonl"


def transcript_files(folder: Path) -> list[Path]:
    """The transcript files of a run or eval folder: iterations in order, then cross-play."""
    directory = Path(folder) / TRANSCRIPTS
    if not directory.is_dir():
        return []
    iterations = sorted((p for p in directory.glob("iter_*.jsonl") if transcript_iteration(p) is not None),
                        key=lambda p: transcript_iteration(p) or 0)
    crossplay = Path(folder) / CROSSPLAY_TRANSCRIPTS
    return iterations + ([crossplay] if crossplay.is_file() else [])


def transcript_iteration(path: Path) -> int | None:
    """N of ``iter_N.jsonl``; None for other files (``crossplay.jsonl``)."""
    stem = path.name.removesuffix(".jsonl")
    number = stem.removeprefix("iter_")
    return int(number) if stem.startswith("iter_") and number.isdigit() else None


def write_transcripts(path: Path, lines: list[TranscriptLine]) -> None:
    write_atomic(path, "".join(line.model_dump_json() + "\n" for line in lines))


def read_transcripts(path: Path) -> tuple[list[TranscriptLine], int]:
    """The games of a transcript file, and how many lines were not one (skipped)."""
    games, bad = [], 0
    for text in read_lines(path):
        try:
            games.append(TranscriptLine.model_validate_json(text))
        except ValidationError:
            bad += 1
    return games, bad


# ---------------------------------------------------------------- a played game
def new_game_folder(root: Path = PLAY_ROOT) -> Path:
    """A new empty folder under ``root`` named after the local time, ``20260105-142233`` (``-2``,
    ``-3``, ... when that name is taken); made here, so two callers never get the same one."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    Path(root).mkdir(parents=True, exist_ok=True)
    taken = 1
    while True:
        folder = Path(root) / (stamp if taken == 1 else f"{stamp}-{taken}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            taken += 1


def write_game(folder: Path, game: Game, line: TranscriptLine) -> Path:
    """One played game as a folder ``detente report`` shows: ``run.json`` (producer ``eval``) and
    ``transcripts/crossplay.jsonl`` holding ``line``; returns the transcript's path."""
    write_run_info(folder, "eval", game)
    path = Path(folder) / CROSSPLAY_TRANSCRIPTS
    write_transcripts(path, [line])
    return path
