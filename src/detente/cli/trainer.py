"""Training one run under a progress bar: what ``detente train`` does for a run and for each run of a
contrast job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from detente.cli.common import UsageError, console, progress
from detente.config import RunConfig, coplayer_learner
from detente.progress import OnProgress
from detente.runs import MetricsLine


def train_with_progress(config: RunConfig, out: Path, description: str, *, resume: bool,
                        force: bool) -> None:
    """Train ``config`` in ``out`` under a progress bar showing reward and cooperation."""
    console.print(f"[bold]{description}[/] {config.name}: {config.credit.algorithm} on {config.game.name}, "
                  f"{config.agent.kind} agent, co-player {config.coplayer}, "
                  f"{config.train.iterations} iterations -> {out}", highlight=False)
    with progress() as bar:
        task = bar.add_task(description, total=config.train.iterations, status="")

        def on_iteration(line: MetricsLine) -> None:
            values = line.values
            status = f"reward {values['reward/learner']:.2f}"
            if values.get("behaviour/cooperation_rate") is not None:
                status += f"  coop {values['behaviour/cooperation_rate']:.2f}"
            bar.update(task, completed=line.iteration + 1, status=status)

        def on_chunk(done: int, total: int | None, status: str) -> None:
            bar.update(task, status=f"rollout {done}/{total} {status}")

        train(config, out, on_iteration, on_chunk, resume=resume, force=force)


def train(config: RunConfig, out: Path, on_iteration: Callable[[MetricsLine], None], on_chunk: OnProgress,
          resume: bool, force: bool) -> None:
    """Run the trainer of the config's agent kind (``on_chunk`` follows a rollout on Ray workers); a
    tabular learner with a learner co-player trains as a pair (:func:`train_tabular_pair`)."""
    if config.agent.kind == "tabular":
        from detente.train.tabular import train_tabular
        from detente.train.tabular_pair import train_tabular_pair

        second = coplayer_learner(config)
        if second is not None:
            train_tabular_pair(config, second, out, on_iteration)
        else:
            train_tabular(config, out, on_iteration)
        return
    from detente.train.llm import train_llm

    train_llm(config, out, on_iteration, resume=resume, force=force, on_progress=on_chunk)


def join_ray(address: str | None, configs: Sequence[RunConfig]) -> None:
    """``--ray-address``: join that Ray cluster before training runs whose rollouts use Ray."""
    if not address:
        return
    if not any(config.rollout.backend == "ray" for config in configs):
        raise UsageError("--ray-address goes with rollout.backend ray (e.g. --set rollout.backend=ray)")
    from detente.rollout.ray_pool import connect

    connect(address)
