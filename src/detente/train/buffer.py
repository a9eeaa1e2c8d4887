"""The opponent buffer (SPEC 3): past checkpoints of the learner as frozen co-players.

Every ``buffer.every`` iterations the learner's adapter is copied into a new
frozen adapter ``past-N`` (N = iterations done) and written to
``checkpoints/buffer/past-N/``. At most ``buffer.max_size`` snapshots stay
loaded (the *resident* set the planner draws from, :func:`detente.train.seating.plan`):
adding one more unloads the oldest resident adapter. Unloaded snapshots stay
on disk (a later ``run:`` agent or analysis can use them) but are no longer
drawn: the buffer is the ``max_size`` most recent snapshots. The paper's code
keeps about 28 resident; at 7B and LoRA rank 32 each is about 320 MB, so an
unbounded buffer would need about 100 GB over 3000 iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from detente.policies.llm import LLMPolicy
from detente.policies.llm_backend import LoRAModel


class OpponentBuffer:
    """Resident past snapshots of adapter ``source`` on ``lm``, at most ``max_size``."""

    def __init__(self, lm: LoRAModel, source: str, folder: Path, max_size: int,
                 make_policy: Callable[[str], LLMPolicy]) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        self.lm = lm
        self.source = source
        self.folder = Path(folder)
        self.max_size = max_size
        self._make_policy = make_policy
        self.policies: list[LLMPolicy] = []
        """The resident snapshots, oldest first."""

    @property
    def names(self) -> list[str]:
        return [policy.adapter or "" for policy in self.policies]

    def add(self, iteration: int) -> None:
        """Snapshot the source adapter as ``past-<iteration>``: loaded, and saved to disk."""
        name = f"past-{iteration}"
        self.lm.copy_adapter(self.source, name)
        self.lm.save_adapter(name, self.folder / name)
        self._admit(name)

    def restore(self, names: list[str]) -> None:
        """Load the resident snapshots a saved state lists (a resumed run), oldest first."""
        for name in names:
            if name not in self.lm.adapters:
                self.lm.load_adapter(name, self.folder / name)
            self._admit(name)

    def _admit(self, name: str) -> None:
        self.policies.append(self._make_policy(name))
        while len(self.policies) > self.max_size:
            evicted = self.policies.pop(0)
            self.lm.delete_adapter(evicted.adapter or "")
