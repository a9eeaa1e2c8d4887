"""Ray actors that play fixed units of work, in a pool that replaces the workers that die.

Training rollouts (:mod:`detente.train.ray_rollout`) and tournaments
(:mod:`detente.eval.ray_tournament`) cut their games into *units* fixed before
any is played (chunks of whole seed groups, pairings) and hand them to a
:class:`WorkerPool`: N Ray actors of one class, each reserving the same CPUs
and GPUs and running torch on the same number of threads. A unit goes to
whichever worker is free and the results come back in unit order, so what a
run computes does not depend on how many workers it has or which one played
what.

A worker that dies (its process killed, its node lost: Ray raises
``RayActorError``) is replaced by a fresh actor and its unit is played again
from the same arguments (the same seeds), so no game is lost or counted
twice; one log line says so. A unit that takes down :data:`MAX_TRIES`
workers stops the run (:class:`~detente.errors.WorkersLost`) rather than
retrying forever. A detente error raised by the work itself (a NaN in the
weights, a missing model) is raised here as it was raised there.

Ray is imported only by :func:`require_ray`, when a run asks for it: the
default install does not need it.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from detente.config import WorkerResources
from detente.errors import ConfigError, DetenteError, UserError, WorkersLost
from detente.progress import OnProgress, silent

log = logging.getLogger(__name__)

MAX_TRIES = 3
"""Workers one unit may take down before the run stops."""
INSTALL_HINT = "pip install 'detente[ray]'"


def require_ray(what: str = "rollout.backend ray") -> ModuleType:
    """The ``ray`` module; a one-line :class:`~detente.errors.ConfigError` naming ``what`` asked for it
    when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{what} needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (None: ``$RAY_ADDRESS``, else a runtime started on this
    machine); nothing if this process is connected already. Workers' own output stays in Ray's
    session logs (``/tmp/ray/session_latest/logs``), so it does not break the progress bar.

    A runtime started here runs its workers at the driver's priority (``RAY_worker_niceness`` 0
    unless it is set). Ray's default is 15, for drivers that do the work themselves; here the driver
    waits while the workers play, and at nice 15 any busy process beside them takes their CPU. A
    cluster that is joined keeps its own setting."""
    ray = require_ray()
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as error:
        where = address or os.environ.get("RAY_ADDRESS", "")
        raise UserError(f"cannot join the Ray cluster at {where!r}: {error}") from None


class Worker:
    """Base of the pool's actor classes: torch on a fixed number of threads, and the process id."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)

    def pid(self) -> int:
        """This worker's process id (an operator, or a test, may kill it)."""
        return os.getpid()


class WorkerPool:
    """``size`` Ray actors of class ``actor``, built as ``actor(threads, *args)``, each reserving
    ``resources``; ``what`` names one of them in messages ("rollout worker")."""

    def __init__(self, actor: type[Worker], args: Sequence[Any], size: int, resources: WorkerResources,
                 what: str) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {size}")
        self._ray = ray = require_ray()
        connect()
        self._make = ray.remote(actor).options(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus)
        self._args = (resources.threads, *args)
        self.what = what
        self.restarts = 0
        """Workers replaced so far."""
        self._warn_if_short(size, resources)
        self.actors = [self._make.remote(*self._args) for _ in range(size)]

    def map(self, method: str, units: Sequence[tuple[Any, ...]], label: str = "unit",
            on_progress: OnProgress = silent) -> list[Any]:
        """``actor.method(*unit)`` for every unit, on whichever worker is free; the results in unit order.

        ``on_progress(done, total, status)`` is told after each unit finishes (the next units already
        handed out). A unit whose worker died is played again on that worker's replacement.
        """
        ray = self._ray
        results: dict[int, Any] = {}
        queue = deque(range(len(units)))
        idle = deque(range(len(self.actors)))
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (unit, worker)
        tries: Counter[int] = Counter()

        def hand_out() -> None:
            while queue and idle:
                unit, worker = queue.popleft(), idle.popleft()
                running[getattr(self.actors[worker], method).remote(*units[unit])] = (unit, worker)

        hand_out()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            unit, worker = running.pop(ready[0])
            try:
                results[unit] = ray.get(ready[0])
            except ray.exceptions.RayActorError as error:
                tries[unit] += 1
                self._replace(worker, f"{label} {unit}", error, tries[unit])
                queue.appendleft(unit)
            except ray.exceptions.RayTaskError as error:
                if isinstance(error.cause, DetenteError):
                    raise error.cause from None
                raise
            idle.append(worker)
            hand_out()
            if unit in results:
                on_progress(len(results), len(units), f"{label}s on {len(self.actors)} workers")
        return [results[unit] for unit in range(len(units))]

    def pids(self) -> list[int]:
        """The process id of every worker, in pool order (each answers when its current unit is done)."""
        return self._ray.get([actor.pid.remote() for actor in self.actors])

    def close(self) -> None:
        """Stop every worker (what they hold is gone; a new pool starts afresh)."""
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []

    def _replace(self, worker: int, unit: str, error: Exception, tries: int) -> None:
        reason = type(error).__name__
        if tries >= MAX_TRIES:
            raise WorkersLost(f"{unit} took down {tries} {self.what}s in a row (last: {reason}); stopping "
                              f"(the workers' logs are in /tmp/ray/session_latest/logs on their nodes)")
        self._ray.kill(self.actors[worker])
        self.actors[worker] = self._make.remote(*self._args)
        self.restarts += 1
        log.warning("%s %d died while playing %s (%s): started a new one, %s replayed from its seeds",
                    self.what, worker, unit, reason, unit)

    def _warn_if_short(self, size: int, resources: WorkerResources) -> None:
        """One line when the cluster has fewer CPUs or GPUs than the pool asks for: the rest wait."""
        have = self._ray.cluster_resources()
        cpus, gpus = size * resources.num_cpus, size * resources.num_gpus
        if cpus > have.get("CPU", 0) or gpus > have.get("GPU", 0):
            log.warning("%d %ss ask for %g CPUs and %g GPUs; the Ray cluster has %g and %g now: the workers "
                        "that do not fit wait until it grows", size, self.what, cpus, gpus,
                        have.get("CPU", 0), have.get("GPU", 0))
