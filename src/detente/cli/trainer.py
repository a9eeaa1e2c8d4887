"""Training one run under a progress bar: what ``detente train`` does for a run and for each run of a
contrast job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from detente.cli.common import console, progress
from detente.config import RunConfig
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

        train(config, out, on_iteration, resume=resume, force=force)


def train(config: RunConfig, out: Path, on_iteration: Callable[[MetricsLine], None], resume: bool,
          force: bool) -> None:
    """Run the trainer of the config's agent kind."""
    if config.agent.kind == "tabular":
        from detente.train.tabular import train_tabular

        train_tabular(config, out, on_iteration)
        return
    from detente.train.llm import train_llm

    train_llm(config, out, on_iteration, resume=resume, force=force)
