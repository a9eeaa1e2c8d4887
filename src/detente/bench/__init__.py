"""``detente bench``: how fast the LLM loop runs on this machine, measured in one process and one run.

Every figure uses one model (``--model``, default the embedded SmolLM2; any name or folder), loaded
once with the LoRA rank of the main job, in its device's dtype (float32 on CPU, bfloat16 on CUDA).
The JSON of :meth:`BenchResult.to_json` holds:

* ``machine``: CPU model, cores, torch threads, torch and transformers versions, device, dtype,
  model name and P, the model's parameters outside the embeddings.
* ``rollout``: per game (IPD, Trust-and-Split) and number of concurrent self-play games,
  detente's decisions per second and tokens forwarded per second beside the naive baseline's
  decisions per second (:mod:`detente.bench.rollout`, :mod:`detente.bench.naive`).
* ``history``: seconds of rounds 1, 5, 10 and 20 of a 20-round game played by detente, and of the
  naive baseline answering the same rounds over the same chat.
* ``update``: the trainer's update on a real first iteration of the main job
  (:mod:`detente.bench.update`): trained tokens per second with the shared prefix and without, a
  bare peft forward and backward of the same unique tokens, the peak memory increase.
* ``ceiling``: the measured matmul rate and the share of it that useful work reaches
  (:mod:`detente.bench.ceiling`): ``fraction`` the update's, ``rollout_fraction`` the best rollout
  record's.

Each timed figure is the fastest of ``repeats`` runs of the same seeded work, after a warm-up play
of each game. :data:`QUICK` is a few minutes on 2 CPU cores; the full run adds 64 games, rounds 5 and
10, the CPU presets' game lengths and 40-token messages, and more repetitions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from detente.bench.ceiling import (
    FORWARD_FLOPS,
    TRAIN_FLOPS,
    body_parameters,
    fraction,
    matmul_gflops,
)
from detente.bench.measure import machine
from detente.bench.rollout import (
    GAMES,
    HistoryRecord,
    Played,
    RolloutRecord,
    detente_policy,
    fastest,
    game_rounds,
    history,
    naive_policy,
    play_timed,
    policy_options,
    rollout_record,
)
from detente.bench.update import UpdateRecord, load_model, measure_update
from detente.errors import ConfigError
from detente.models import EMBEDDED, check_model
from detente.policies.llm_backend import LoRAModel
from detente.progress import OnProgress, silent

MATMUL_N = {"cpu": 2048, "cuda": 8192}
"""Side of the square matrices of the ceiling, per device type."""
MATMUL_REPEATS = 5


@dataclass(frozen=True)
class Sizes:
    """How much a benchmark run measures."""

    concurrency: tuple[int, ...]
    """Concurrent games of the rollout figures."""
    rounds: tuple[int, ...]
    """Rounds reported by the history figures."""
    rollout_rounds: dict[str, int]
    """Rounds of each game in the rollout figures."""
    repeats: int
    """Runs of each timed figure; the fastest is reported."""
    naive_games: int
    """At most this many of a rollout figure's games are played by the naive baseline."""
    message_tokens: int
    """Token limit of a free-text message, for both policies."""


def sizes(quick: bool) -> Sizes:
    """:data:`QUICK`-sized or full (the full run's game lengths and message limit are the CPU presets')."""
    if quick:
        return Sizes(concurrency=(1, 8, 32), rounds=(1, 20), rollout_rounds={"ipd": 2, "trust_split": 1},
                     repeats=1, naive_games=1, message_tokens=16)
    return Sizes(concurrency=(1, 8, 32, 64), rounds=(1, 5, 10, 20),
                 rollout_rounds={game: game_rounds(game) for game in GAMES}, repeats=3, naive_games=8,
                 message_tokens=policy_options()["max_message_tokens"])


QUICK = sizes(quick=True)


@dataclass(frozen=True)
class BenchOptions:
    model: str = EMBEDDED
    """A model name for :func:`detente.models.load_model` or a model folder."""
    device: str | None = None
    """``cpu`` or ``cuda``; None: CUDA when it is available."""
    quick: bool = False
    naive_games: int | None = None
    """At most this many games per rollout figure for the naive baseline; None: the size's."""
    threads: int | None = None
    """Torch's intra-op threads; None: torch's default. On a machine shared with other work, 1 keeps
    two threads from waiting for each other at every small operation (a decode step is hundreds)."""
    seed: int = 0


@dataclass(frozen=True)
class CeilingRecord:
    matmul_gflops: float
    """Best GFLOP/s of a square matmul in the model's dtype (:func:`matmul_gflops`)."""
    fraction: float
    """The update's useful work, ``6 P`` per unique token trained, per second over the ceiling."""
    rollout_fraction: float
    """The best rollout record's useful work, ``2 P`` per token forwarded, per second over the ceiling."""


@dataclass(frozen=True)
class BenchResult:
    machine: dict[str, Any]
    """:func:`detente.bench.measure.machine`."""
    rollout: list[RolloutRecord]
    history: list[HistoryRecord]
    update: UpdateRecord
    ceiling: CeilingRecord

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str | None) -> torch.device:
    """The device to measure on; a one-line error for CUDA where there is none."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: use cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device cuda: torch {torch.__version__} sees no CUDA GPU here; use --device cpu")
    return torch.device(name)


class _Ticker:
    """Reports one more unit of the benchmark done."""

    def __init__(self, total: int, on_progress: OnProgress) -> None:
        self.done, self.total, self.on_progress = 0, total, on_progress

    def __call__(self, status: str) -> None:
        self.done += 1
        self.on_progress(self.done, self.total, status)


def run_bench(options: BenchOptions, on_progress: OnProgress = silent) -> BenchResult:
    """Measure everything (module docstring); ``on_progress`` after each unit of work."""
    size, naive_games, device = prepare(options)
    tick = _Ticker(units(size, naive_games), on_progress)
    lm = load_model(options.model, device)
    P = body_parameters(lm.base)
    tick(f"loaded {options.model}")
    gflops = matmul_gflops(lm.device, lm.dtype, MATMUL_N[lm.device.type], MATMUL_REPEATS)
    tick(f"matmul {gflops:.0f} GFLOP/s")
    warm_up(lm, size.message_tokens, options.seed)
    tick("warm-up played")
    rollout = [r for game in GAMES for r in rollout_figures(lm, game, size, naive_games, options.seed, tick)]
    rounds = []
    for game in GAMES:
        rounds += history(lm, game, size.rounds, size.message_tokens, size.repeats, options.seed)
        tick(f"history {game}")
    update = measure_update(lm, options.model, size.repeats, tick)
    return BenchResult(machine(lm.device, lm.dtype, options.model, P), rollout, rounds, update,
                       ceiling_record(gflops, P, rollout, update))


def prepare(options: BenchOptions) -> tuple[Sizes, int, torch.device]:
    """The sizes, the naive baseline's games and the device, after checking the options and the model
    (nothing loads before that); torch's threads set."""
    size = sizes(options.quick)
    naive_games = size.naive_games if options.naive_games is None else options.naive_games
    if naive_games < 1:
        raise ConfigError(f"naive games must be >= 1, got {naive_games}")
    if options.threads is not None:
        if options.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {options.threads}")
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    check_model(options.model)
    return size, naive_games, device


def units(size: Sizes, naive_games: int) -> int:
    """Progress units: loading, the matmul, the warm-up; per game each rollout figure, each distinct
    naive play (:func:`rollout_figures`) and the history; the update's four steps."""
    naive_plays = len({min(n, naive_games) for n in size.concurrency})
    return 3 + len(GAMES) * (len(size.concurrency) + naive_plays + 1) + 4


def ceiling_record(gflops: float, P: int, rollout: list[RolloutRecord],
                   update: UpdateRecord) -> CeilingRecord:
    best = max(r.tokens_per_s for r in rollout)
    return CeilingRecord(
        matmul_gflops=gflops,
        fraction=fraction(TRAIN_FLOPS * P * update.unique_tokens / update.seconds, gflops),
        rollout_fraction=fraction(FORWARD_FLOPS * P * best, gflops),
    )


def warm_up(lm: LoRAModel, message_tokens: int, seed: int) -> None:
    """Untimed: one round of each game by detente and one IPD round by the naive baseline (weights paged
    in, kernels chosen)."""
    for game in GAMES:
        play_timed(detente_policy(lm, message_tokens), game, 1, 1, seed, lm.device)
    play_timed(naive_policy(lm, message_tokens), "ipd", 1, 1, seed, lm.device)


def rollout_figures(lm: LoRAModel, game: str, size: Sizes, naive_games: int, seed: int,
                    tick: _Ticker) -> list[RolloutRecord]:
    """The rollout records of ``game``; the naive baseline plays each distinct number of games once."""
    rounds, tokens, repeats = size.rollout_rounds[game], size.message_tokens, size.repeats
    naive: dict[int, Played] = {}
    records = []
    for n in size.concurrency:
        k = min(n, naive_games)
        if k not in naive:
            naive[k] = fastest(lambda: naive_policy(lm, tokens), repeats, game, k, rounds, seed, lm.device)
            tick(f"rollout {game}: naive, {k} games")
        ours = fastest(lambda: detente_policy(lm, tokens), repeats, game, n, rounds, seed, lm.device)
        records.append(rollout_record(ours, naive[k], game, n, k))
        tick(f"rollout {game}: detente, {n} games")
    return records


__all__ = ["QUICK", "BenchOptions", "BenchResult", "run_bench", "sizes"]
