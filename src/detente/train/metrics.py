"""Where a trainer's metrics go: ``metrics.jsonl`` always, and TensorBoard when asked.

Every trainer writes one :class:`~detente.runs.MetricsLine` per iteration
through a :class:`MetricsLog`. With ``tensorboard`` on (``detente train
--tensorboard``, or ``train.tensorboard: true``) each figure is also a scalar in
``tensorboard/`` under its metrics name (``reward/learner``, ``loss/kl``, ...),
so a run can be watched live with ``tensorboard --logdir runs``. The writer is
torch's ``SummaryWriter`` (it needs the ``tensorboard`` package: the
``tensorboard`` extra). A resumed run purges the events of the iterations it
repeats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detente.errors import ConfigError
from detente.runs import TENSORBOARD, MetricsLine, append_metrics


class MetricsLog:
    """Appends metrics lines to ``folder/metrics.jsonl`` and, with ``tensorboard``, to an event file."""

    def __init__(self, folder: Path, tensorboard: bool = False, first_iteration: int = 0) -> None:
        self.folder = Path(folder)
        self.writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.tensorboard needs the tensorboard package: "
                                  "pip install 'detente[tensorboard]'") from None
            self.writer = SummaryWriter(log_dir=str(self.folder / TENSORBOARD), purge_step=first_iteration)

    def write(self, line: MetricsLine) -> None:
        append_metrics(self.folder, line)
        if self.writer is not None:
            for key, value in line.values.items():
                if value is not None:
                    self.writer.add_scalar(key, value, line.iteration)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
