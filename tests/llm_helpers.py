"""Helpers of the language-model tests: a fake game, adapter perturbation, teacher-forced scoring, a run
stopped as a kill would stop it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from detente.games.base import Action, Game, Seat
from detente.policies.llm import Chat, LLMPolicy
from detente.policies.llm_backend import LoRAModel


def perturb(lm: LoRAModel, adapter: str, seed: int, scale: float = 0.5) -> None:
    """Give ``adapter`` non-zero weights so that it changes the model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in lm.model.named_parameters():
            if f".{adapter}." in name and "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)


def self_play_batch(trainer: Any) -> tuple[list[Chat], torch.Tensor]:
    """The trained chats of a fresh trainer's first self-play iteration and their credit ``C``, before
    any update (its planned games played, credited as the trainer does)."""
    from detente.rollout.play import play
    from detente.train.llm import round_credit
    from detente.train.seating import plan, training_rows

    cfg = trainer.config
    seatings = plan(cfg, 0, trainer.learner, None, [])
    games = [trainer.game_factory() for _ in seatings]
    play(games, [s.players for s in seatings], [s.seed for s in seatings],
         streams=list(range(len(seatings))))
    rows = training_rows(seatings)
    C, _ = round_credit(cfg, games, rows, trainer.reward_scale)
    return [trainer.learner.chats[slot][seat] for slot, seat in rows], C


def stop_after(config: Any, out: Path, iteration: int, lm: LoRAModel) -> None:
    """Train ``config`` in ``out`` on ``lm`` and stop, as a kill would, once ``iteration`` is saved."""
    from detente.train.llm import train_llm

    class Killed(Exception):
        pass

    def stop(line: Any) -> None:
        if line.iteration == iteration:
            raise Killed

    with pytest.raises(Killed):
        train_llm(config, out, stop, lm=lm)


def teacher_forced(lm: LoRAModel, adapter: str | None, ids: list[int]) -> torch.Tensor:
    """log p(ids[i] | ids[:i]) for i >= 1 from one plain forward (no cache, no custom mask)."""
    with lm.active(adapter) as model, torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = logits.log_softmax(-1)
    return logp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)


def option_logprob(lm: LoRAModel, adapter: str | None, prefix: list[int], option: list[int]) -> float:
    return float(teacher_forced(lm, adapter, prefix + option)[len(prefix) - 1:].sum())


class FakeGame(Game):
    """A tiny game asking one fixed spec of both seats each round, with a fixed observation."""

    name = "fake"
    version = 1
    reward_scale = 1.0

    def __init__(self, spec, n_rounds: int = 3, text: str = "Round news: <B> was played.") -> None:
        self.spec = spec
        self.n_rounds = n_rounds
        self.text = text

    def _start(self) -> None:
        self._tell_both("Rules of the fake game. " + self.text)

    def pending(self):
        return {} if self.done else {0: self.spec, 1: self.spec}

    def _apply(self, actions: dict[Seat, Action]) -> tuple[float, float]:
        self._tell_both(self.text)
        return (0.0, 0.0)

    def view(self, seat: Seat) -> None:
        return None

    def max_welfare(self) -> float:
        return 0.0


def all_records(policy: LLMPolicy) -> Iterator[tuple[Chat, object]]:
    for pair in policy.chats:
        for chat in pair:
            for record in chat:
                yield chat, record
