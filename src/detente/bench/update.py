"""The update figures: ``TrainedAdapter.update`` on a real first iteration, with and without the shared
prefix, beside a bare peft forward and backward of the same tokens.

The batch is the first iteration of the :data:`PRESET` config (IPD of 6 rounds, 4 games, Advantage
Alignment with the opponent buffer: 4 trained chats): its rollout and credit exactly as
:meth:`LLMTrainer.step <detente.train.llm.LLMTrainer.step>` computes them, then its
:class:`~detente.train.terms.TermBatch` micro-batches.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from detente.bench.measure import PeakMemory, clock
from detente.config import RunConfig, load_config, preset_path
from detente.policies.llm import Chat
from detente.policies.llm_backend import LoRAModel, decoder_forward
from detente.train.llm import LEARNER, LLMTrainer, round_credit
from detente.train.seating import plan, training_rows
from detente.train.terms import TermBatch, batch_prefix, update_tokens

PRESET = "cpu_ipd_adalign"
"""The config whose first iteration is trained (4 trained chats: one seat per game, with the buffer)."""


@dataclass(frozen=True)
class UpdateRecord:
    tokens_per_s: float
    """Trained tokens / wall seconds of ``TrainedAdapter.update`` (the shared prefix forwarded once, the
    trainer's default), counting every chat's tokens as the unshared computation would
    (``TermBatch.row_tokens``: chat and branch tokens of every row, no padding)."""
    unshared_tokens_per_s: float
    """The same tokens / wall seconds of the same update with ``train.share_prefix=false``."""
    bare_tokens_per_s: float
    """Unique tokens (:func:`~detente.train.terms.update_tokens`: each shared prefix once, then each
    row's own) / wall seconds of a bare forward and backward of them through the peft model
    (:func:`bare_step`)."""
    peak_mib: float
    """Peak memory increase during the shared update (:class:`~detente.bench.measure.PeakMemory`:
    resident set on CPU, allocated GPU memory on CUDA), in MiB."""
    unique_tokens: int
    """Unique tokens of the batch, what the useful work (6 P per token) counts."""
    seconds: float
    """Wall seconds of the shared update."""


def config(model: str, share_prefix: bool = True) -> RunConfig:
    """The :data:`PRESET` config on ``model``."""
    return load_config(preset_path(PRESET), [f"agent.model={model}", f"train.share_prefix={share_prefix}"])


def load_model(model: str, device: torch.device) -> LoRAModel:
    """``model`` with the LoRA rank and alpha of :data:`PRESET` (the one model every figure uses)."""
    agent = config(model).agent
    return LoRAModel.load(model, device=device, lora_r=agent.lora_r, lora_alpha=agent.lora_alpha)


def first_iteration(trainer: LLMTrainer) -> tuple[list[Chat], Tensor]:
    """The trained chats of iteration 0 and their credit ``C`` (R, T), as ``LLMTrainer.step`` computes
    them (rollout of the planned games, credit of the trained rows)."""
    cfg = trainer.config
    seatings = plan(cfg, 0, trainer.learner, trainer.fixed, trainer.buffer.policies)
    streams = [f"{cfg.seed}:0:{slot}" for slot in range(len(seatings))]
    rollout = trainer.rollout.run(seatings, streams, trainer.game_factory, 0, 0)
    rows = training_rows(seatings)
    C, _ = round_credit(cfg, [e.game for e in rollout.episodes], rows, trainer.reward_scale)
    return [rollout.learner_chats[row] for row in rows], C


def unique_sequences(batch: TermBatch) -> list[Tensor]:
    """The micro-batch's tokens as its forward processes them: its shared prefix once after the batch
    prefix (which the update forwards once for all micro-batches), then each row's own tokens (its chat
    and branch tokens after the prefix). Their lengths add up to ``batch.unique_tokens - P0``."""
    lengths = batch.visible[:, :, 0].sum(dim=1).tolist()  # every real token sees token 0; padding does not
    P0, P = batch.batch_prefix, batch.prefix
    rows = [batch.ids[m, P:n] for m, n in enumerate(lengths)]
    sequences = [batch.ids[0, P0:P], *rows] if P > P0 else rows
    assert sum(len(s) for s in sequences) == batch.unique_tokens - P0, "unique tokens miscounted"
    return [s for s in sequences if len(s)]


def bare_step(lm: LoRAModel, batches: Sequence[TermBatch], pad_id: int) -> None:
    """A bare forward and backward of the update's unique tokens through the peft model (the learner's
    adapter on): the batch prefix, then every micro-batch's :func:`unique_sequences` as one padded batch,
    each with plain causal attention, loss the mean square of the last hidden states (no output head),
    gradients then dropped."""
    P0 = batch_prefix(batches)
    groups = [[batches[0].ids[0, :P0]]] if P0 else []
    with lm.active(LEARNER) as model:
        for sequences in [*groups, *(unique_sequences(batch) for batch in batches)]:
            ids = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=pad_id)
            mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(s) for s in sequences], batch_first=True)
            ids, mask = ids.to(lm.device), mask.to(lm.device)
            hidden, _, _ = decoder_forward(model, input_ids=ids, attention_mask=mask)  # (k, L, H)
            hidden[mask.bool()].float().square().mean().backward()
    for param in lm.trainable_parameters(LEARNER):
        param.grad = None


def timed(run: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """The fastest wall seconds of ``repeats`` calls of ``run``, and the largest peak memory increase."""
    best, peak = float("inf"), 0.0
    for _ in range(repeats):
        with PeakMemory(device) as memory:
            began = clock(device)
            run()
            best = min(best, clock(device) - began)
        peak = max(peak, memory.mib)
    return best, peak


def measure_update(lm: LoRAModel, model: str, repeats: int,
                   on_step: Callable[[str], None]) -> UpdateRecord:
    """The :class:`UpdateRecord` of :data:`PRESET`'s first iteration on ``lm``; ``on_step(status)``
    after the rollout and after each of the three timed updates."""
    with tempfile.TemporaryDirectory() as out:
        cfg = config(model)
        torch.manual_seed(cfg.seed)  # the fresh adapter's initialisation, as in a run
        trainer = LLMTrainer(cfg, Path(out), lm)
        unshared = LLMTrainer(config(model, share_prefix=False), Path(out), lm)
        chats, C = first_iteration(trainer)
        on_step("update: first iteration played")
        batches, plain = trainer.main.term_batches(chats, C), unshared.main.term_batches(chats, C)
        pad = lm.tokenizer.pad_token_id or 0
        bare_step(lm, [batches[0]], pad)  # warm-up: the first backward allocates its buffers
        seconds, peak = timed(lambda: trainer.main.update(batches), lm.device, repeats)
        on_step("update: shared prefix")
        unshared_seconds, _ = timed(lambda: unshared.main.update(plain), lm.device, repeats)
        on_step("update: unshared")
        bare_seconds, _ = timed(lambda: bare_step(lm, batches, pad), lm.device, repeats)
        on_step("update: bare peft")
    rows, unique = sum(b.row_tokens for b in batches), update_tokens(batches)
    return UpdateRecord(tokens_per_s=rows / seconds, unshared_tokens_per_s=rows / unshared_seconds,
                        bare_tokens_per_s=unique / bare_seconds, peak_mib=peak, unique_tokens=unique,
                        seconds=seconds)
