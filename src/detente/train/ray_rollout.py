"""The rollout of an llm iteration on Ray actors (``rollout.backend: ray``).

Each of ``rollout.workers`` workers (:class:`RolloutWorker`, a Ray actor
reserving ``rollout.resources``) loads the run's base model once and builds
the policies of a game plan: the learner (adapter ``learner``), the fixed
co-player (:func:`~detente.train.seating.coplayer_policy`, as the trainer
builds it) and the opponent buffer's frozen snapshots. After every update the
trainer puts the learner's LoRA weights (peft's adapter state dict, never the
base model) into Ray's object store once, under a fresh version number, and
every chunk it hands out carries that reference: a worker fetches the weights
when its version is older, and each buffer snapshot once, when it first plays
it.

**Chunks.** The iteration's games are cut into chunks of
``rollout.chunk_games`` consecutive games, whole seed groups each (the
leave-one-out baseline needs all K games of a group), and each chunk is
played as one :func:`~detente.rollout.play.play` batch by whichever worker
is free. The numbers of a batch depend on which games are batched together
and on torch's thread count, so both are fixed: the chunks by the config, the
threads by ``rollout.resources.num_cpus``. One worker or eight compute the
same chunks, hence the same trajectories, metrics and adapter; a chunk whose
worker died is played again from its seeds on a replacement
(:class:`~detente.rollout.ray_pool.WorkerPool`).

Workers hold nothing a resume needs: they get the weights every iteration.

**Engines.** A worker plays through an engine that owns its models
(:class:`TransformersEngine`: the packed transformers forward of
:mod:`detente.policies.llm_backend`). A vLLM engine is the seam's other side:
the same three duties (policies by role, the learner's weights by version,
snapshots by name), the learner's LoRA loaded into vLLM under the version as
its adapter id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from detente.config import RunConfig
from detente.games import make_game
from detente.games.base import Game, Seat
from detente.policies.base import Policy
from detente.policies.llm import LLMPolicy
from detente.policies.llm_backend import LoRAModel
from detente.progress import OnProgress, silent
from detente.rollout.ray_pool import Worker, WorkerPool, require_ray
from detente.train.buffer import OpponentBuffer
from detente.train.rollout import LocalRollout, RolloutResult
from detente.train.seating import LEARNER, Seating, coplayer_policy

log = logging.getLogger(__name__)

COPLAYER = "coplayer"
"""Role of the fixed co-player in a :class:`SeatPlan`."""


@dataclass(frozen=True)
class SeatPlan:
    """One game of a chunk as a worker seats it: players by role (:data:`~detente.train.seating.LEARNER`,
    :data:`COPLAYER` or a buffer snapshot's adapter name)."""

    seed: int
    roles: tuple[str, str]
    trained: tuple[Seat, ...]
    group: int


@dataclass(frozen=True)
class Chunk:
    """A unit of work: consecutive games of the iteration's plan, whole seed groups."""

    offset: int
    """Slot of its first game in the iteration."""
    games: list[SeatPlan]
    streams: list[str]
    keep_transcripts: int
    """How many of its first games are kept as transcripts."""
    iteration: int


@dataclass(frozen=True)
class Weights:
    """The adapters a chunk is played with, as object-store references (fetched only when missing)."""

    version: int
    """Fresh after every update: a worker holding an older version fetches ``learner``."""
    learner: Any
    snapshots: dict[str, Any]
    """Adapter name -> weights of every buffer snapshot the planner may draw."""


def chunk_slots(seatings: Sequence[Seating], chunk_games: int) -> list[range]:
    """The slots of each chunk: ``chunk_games`` consecutive games, never splitting a seed group (a
    group is consecutive slots of one ``group``); a chunk holds at least one whole group."""
    starts = [slot for slot, s in enumerate(seatings) if slot == 0 or s.group != seatings[slot - 1].group]
    bounds, begin = [], 0
    for start, end in zip(starts, [*starts[1:], len(seatings)], strict=True):
        if end - begin > chunk_games and start > begin:
            bounds.append(range(begin, start))
            begin = start
    if begin < len(seatings):
        bounds.append(range(begin, len(seatings)))
    return bounds


# --------------------------------------------------------------------------
# The trainer's side
# --------------------------------------------------------------------------
class RayRollout:
    """A :class:`~detente.train.rollout.RolloutBackend` playing on ``config.rollout.workers`` Ray actors.

    ``lm`` is the trainer's model (the learner's and the snapshots' weights are read from it);
    ``learner``, ``fixed`` and ``buffer`` are the trainer's policies, recognised in the plans it hands
    over; ``on_progress`` is told after every chunk. The workers start at the first :meth:`run` and
    stop at :meth:`close`.
    """

    def __init__(self, config: RunConfig, lm: LoRAModel, learner: LLMPolicy, fixed: Policy | None,
                 buffer: OpponentBuffer, on_progress: OnProgress = silent) -> None:
        require_ray()
        self.config = config
        self.on_progress = on_progress
        self.lm = lm
        self.learner = learner
        self.fixed = fixed
        self.buffer = buffer
        self.pool: WorkerPool | None = None
        self.version = 0
        self._snapshots: dict[str, Any] = {}  # adapter name -> object ref, put once

    def run(self, seatings: Sequence[Seating], streams: Sequence[str], new_game: Callable[[], Game],
            keep_transcripts: int, iteration: int) -> RolloutResult:
        """Play the plan chunk by chunk on the workers (the workers make the config's game themselves:
        ``new_game`` is what a local rollout would call)."""
        pool = self.start()
        restarts = pool.restarts
        weights = self._weights()
        plans = [SeatPlan(s.seed, (self._role(s.players[0]), self._role(s.players[1])), s.trained, s.group)
                 for s in seatings]
        chunks = [Chunk(slots.start, plans[slots.start:slots.stop], list(streams[slots.start:slots.stop]),
                        max(0, min(keep_transcripts - slots.start, len(slots))), iteration)
                  for slots in chunk_slots(seatings, self.config.rollout.chunk_games)]
        results = pool.map("play", [(chunk, weights) for chunk in chunks], "chunk", self.on_progress)
        merged = merge(chunks, results)
        merged.perf.update({"perf/workers": len(pool.actors), "perf/chunks": len(chunks),
                            "perf/worker_restarts": pool.restarts - restarts})
        return merged

    def start(self) -> WorkerPool:
        """The worker pool, started if it is not running."""
        if self.pool is None:
            rollout = self.config.rollout
            chunks = -(-self.config.train.games_per_iteration // rollout.chunk_games)  # ceiling
            if rollout.workers > chunks:
                log.warning("rollout.workers %d > %d chunks per iteration: %d workers will stay idle (lower "
                            "rollout.chunk_games, now %d)", rollout.workers, chunks, rollout.workers - chunks,
                            rollout.chunk_games)
            self.pool = WorkerPool(RolloutWorker, (self.config,), rollout.workers, rollout.resources,
                                   "rollout worker")
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def _weights(self) -> Weights:
        """This iteration's weights, each put into the object store once: the learner under a fresh
        version, each resident snapshot when first seen (evicted ones are dropped)."""
        ray = require_ray()
        self.version += 1
        self._snapshots = {name: self._snapshots[name] if name in self._snapshots
                           else ray.put(self.lm.adapter_state(name)) for name in self.buffer.names}
        return Weights(self.version, ray.put(self.lm.adapter_state(LEARNER)), dict(self._snapshots))

    def _role(self, player: Policy) -> str:
        if player is self.learner:
            return LEARNER
        if player is self.fixed:
            return COPLAYER
        if isinstance(player, LLMPolicy) and player in self.buffer.policies:
            return player.adapter or ""
        raise ValueError(f"{player!r} is neither the learner, its co-player nor a buffer snapshot: a rollout "
                         "worker cannot build it")


def merge(chunks: Sequence[Chunk], results: Sequence[RolloutResult]) -> RolloutResult:
    """The chunks' results as one, in plan order: slots (of chats, records and transcripts) renumbered
    from each chunk's offset, counters summed."""
    merged = RolloutResult([], {})
    for chunk, result in zip(chunks, results, strict=True):
        merged.episodes.extend(result.episodes)
        for (slot, seat), chat in result.learner_chats.items():
            for record in chat.records:
                record.slot = chunk.offset + slot
            merged.learner_chats[(chunk.offset + slot, seat)] = chat
        merged.transcripts.extend(line.model_copy(update={"slot": chunk.offset + line.slot})
                                  for line in result.transcripts)
        merged.stats.update(result.stats)
    return merged


# --------------------------------------------------------------------------
# The worker's side
# --------------------------------------------------------------------------
class TransformersEngine:
    """A worker's models: the base model loaded once, with the learner's adapter, the buffer snapshots
    as more adapters on it, and the co-player."""

    def __init__(self, config: RunConfig) -> None:
        agent = config.agent
        self.config = config
        self.lm = LoRAModel.load(agent.model, lora_r=agent.lora_r, lora_alpha=agent.lora_alpha)
        self.lm.add_adapter(LEARNER)
        self.learner = self._policy(LEARNER)
        self.coplayer = coplayer_policy(config, make_game(config.game.name, **config.game.params), self.lm)
        self.snapshots: dict[str, LLMPolicy] = {}
        self.version: int | None = None

    def load(self, weights: Weights) -> None:
        """Bring the learner to ``weights.version`` and the loaded snapshots to ``weights.snapshots``."""
        ray = require_ray()
        if weights.version != self.version:
            self.lm.set_adapter_state(LEARNER, ray.get(weights.learner), source="the learner's weights")
            self.version = weights.version
        for name in [name for name in self.snapshots if name not in weights.snapshots]:
            self.lm.delete_adapter(name)
            del self.snapshots[name]
        for name, ref in weights.snapshots.items():
            if name not in self.snapshots:
                self.lm.add_adapter(name)
                self.lm.set_adapter_state(name, ray.get(ref), source=f"snapshot {name}")
                self.snapshots[name] = self._policy(name)

    def seat(self, plan: SeatPlan) -> Seating:
        """The game ``plan`` describes, with this worker's policies."""
        return Seating(plan.seed, (self._player(plan.roles[0]), self._player(plan.roles[1])), plan.trained,
                       plan.group)

    def _player(self, role: str) -> Policy:
        if role == LEARNER:
            return self.learner
        if role == COPLAYER and self.coplayer is not None:
            return self.coplayer
        return self.snapshots[role]

    def _policy(self, adapter: str) -> LLMPolicy:
        return LLMPolicy(self.lm, adapter, name=adapter, **self.config.agent.policy_options())


class RolloutWorker(Worker):
    """The Ray actor: builds its engine at its first chunk (so a failure to load comes back as the
    detente error it is) and plays chunks with it."""

    def __init__(self, threads: int, config: RunConfig) -> None:
        super().__init__(threads)
        self.config = config
        self.engine: TransformersEngine | None = None

    def play(self, chunk: Chunk, weights: Weights) -> RolloutResult:
        """The chunk's result, slots counted from the chunk's start (:func:`merge` renumbers them). The
        chats come back without key/value caches: :func:`~detente.rollout.play.play` ends every policy,
        which drops them."""
        if self.engine is None:
            self.engine = TransformersEngine(self.config)
        engine = self.engine
        engine.load(weights)
        config = self.config

        def new_game() -> Game:
            return make_game(config.game.name, **config.game.params)

        return LocalRollout(engine.learner).run([engine.seat(plan) for plan in chunk.games], chunk.streams,
                                                new_game, chunk.keep_transcripts, chunk.iteration)
