"""One trained LoRA adapter: its config, parameters, Adam optimizer and the update of SPEC 3.

The LLM trainer (:mod:`detente.train.llm`) trains one :class:`TrainedAdapter`,
the learner's, or two when the co-player is a second live learner
(``coplayer: learner:CONFIG``): both adapters sit on one shared
:class:`~detente.policies.llm_backend.LoRAModel`, and each is updated with its
own config's settings (``train.lr``, ``entropy_coef``, ``kl_coef``, ``rho_max``,
``epochs``, ``clip_eps``, ``grad_clip``; ``agent.temperature`` for ``log pi``)::

    L = (1/N) sum [ -C * rho * log pi(tok) + kappa * rho * k3 - eta * H ]       (epochs = 1)
    L = (1/N) sum [ -min(r C, clip(r, 1 - eps, 1 + eps) C) + kappa k3 - eta H ]  (epochs > 1)

with ``C`` the adapter's own credit (:func:`detente.train.llm.round_credit` with its own
credit rule) and N the number of its terms in the batch (:mod:`detente.train.loss`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from detente.config import RunConfig
from detente.policies.llm import Chat, LLMPolicy
from detente.policies.llm_backend import LoRAModel
from detente.train.loss import clipped_policy_loss, k3, policy_loss
from detente.train.terms import (
    BatchPrefix,
    Prefix,
    TermBatch,
    batch_prefix,
    common_prefix,
    forward_prefix,
    term_batch,
    term_logprobs,
)


def policy_maker(lm: LoRAModel, config: RunConfig) -> Callable[[str], LLMPolicy]:
    """``make(adapter)``: a policy acting with ``adapter`` on ``lm``, named after it, with the run's
    policy options (the learner, the buffer's snapshots).

    It holds ``lm`` and the options, never the trainer: a trainer -> buffer -> factory -> trainer cycle
    would keep the base model alive after training until the cyclic garbage collector happened to run,
    and the final cross-play would load a second base model beside it (docs/PERFORMANCE.md).
    """
    options = config.agent.policy_options()
    return lambda adapter: LLMPolicy(lm, adapter, name=adapter, **options)


class TrainedAdapter:
    """Adapter ``adapter`` of ``lm`` (already added), trained as ``config`` says; it acts as ``policy``."""

    def __init__(self, lm: LoRAModel, adapter: str, config: RunConfig) -> None:
        self.lm = lm
        self.adapter = adapter
        self.config = config
        self.params = lm.trainable_parameters(adapter)
        self.optimizer = torch.optim.Adam(self.params, lr=config.train.lr)
        self.policy = policy_maker(lm, config)(adapter)
        self.nonfinite_steps = 0
        """Updates skipped so far because their loss or gradient was not finite."""
        self.nonfinite_in_a_row = 0

    # -- the update ------------------------------------------------------------
    def term_batches(self, chats: Sequence[Chat], C: Tensor) -> list[TermBatch]:
        """The loss terms of ``chats`` in micro-batches of about ``train.micro_batch_tokens`` tokens each
        beyond what all of them share (:func:`micro_batches`), a micro-batch's own shared prefix counted
        once."""
        cfg = self.config.train
        pad = self.lm.tokenizer.pad_token_id or 0
        sequences = [chat.token_ids for chat in chats]
        shared = common_prefix(sequences) if cfg.share_prefix and len(chats) > 1 else 0
        return [term_batch([chats[i] for i in group], C[group], pad, share_prefix=cfg.share_prefix,
                           batch_prefix=shared)
                for group in micro_batches(sequences, cfg.micro_batch_tokens, cfg.share_prefix)]

    def update(self, batches: Sequence[TermBatch]) -> dict[str, Any]:
        """Epochs over the batch in micro-batches; one optimizer step per epoch, skipped (and counted in
        ``nonfinite_steps``) when the loss or the gradient is not finite. Returns the ``loss/*`` figures.

        The first tokens all chats share are forwarded once per epoch (:class:`BatchPrefix`), with the
        adapter and once more without it for the KL term; every micro-batch reads them.
        """
        cfg = self.config.train
        N = max(sum(b.n_terms for b in batches), 1)  # terms in the whole batch
        sums = dict.fromkeys(("loss", "entropy", "kl", "clipped", "rho"), 0.0)
        rho_max = 0.0
        grad_norm, finite = 0.0, True
        shared = batch_prefix(batches)  # P0
        for _epoch in range(cfg.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            reference = self.reference_prefix(batches[0], shared) if shared and cfg.kl_coef > 0 else None
            with self.training() as model:
                prefix = BatchPrefix(model, batches[0], shared) if shared else None
                shared_part = prefix.prefix if prefix is not None else None
                for batch in batches:
                    if not batch.n_terms:
                        continue
                    parts = self.micro_batch_loss(model, batch, N, shared_part, reference)
                    finite = finite and bool(torch.isfinite(parts["loss"]))
                    if not finite:
                        break
                    parts["loss"].backward()
                    for key in sums:
                        sums[key] += float(parts[key].detach())
                    rho_max = max(rho_max, float(parts["rho_max"]))
                if finite and prefix is not None:
                    prefix.backward()
                del prefix, shared_part  # the prefix's leaves, their gradients and its checkpoint
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
            finite = finite and math.isfinite(grad_norm)
            if not finite:
                self.optimizer.zero_grad(set_to_none=True)
                break
            self.optimizer.step()
            self.lm.touch(self.adapter)
        self.nonfinite_steps += not finite
        self.nonfinite_in_a_row = 0 if finite else self.nonfinite_in_a_row + 1
        epochs = cfg.epochs
        return {
            "loss/policy": sums["loss"] / epochs if finite else None,
            "loss/entropy": sums["entropy"] / epochs if finite else None,
            "loss/kl": sums["kl"] / epochs if finite and cfg.kl_coef > 0 else None,
            "loss/clip_frac": sums["clipped"] / epochs if finite else None,
            "loss/rho_mean": sums["rho"] / epochs if finite else None,
            "loss/rho_max": rho_max if finite else None,
            "loss/grad_norm": grad_norm,
            "loss/nonfinite_steps": self.nonfinite_steps,
        }

    @contextmanager
    def training(self) -> Iterator[Any]:
        """The model with this adapter active, in the mode its loss forward *and* backward must run in:
        train mode under gradient checkpointing (transformers checkpoints only then), whose backward
        recomputes layers with whatever adapter is active at that time."""
        with self.lm.active(self.adapter) as model:
            model.train(self.config.train.gradient_checkpointing)
            yield model

    def reference_prefix(self, batch: TermBatch, length: int) -> Prefix:
        """The batch's shared first ``length`` tokens under the base model (adapters off), no gradient."""
        with torch.no_grad(), self.lm.active(None) as reference:
            return forward_prefix(reference, batch, length)

    def micro_batch_loss(
        self, model: Any, batch: TermBatch, N: int, prefix: Prefix | None = None,
        reference: Prefix | None = None,
    ) -> dict[str, Tensor]:
        """This micro-batch's share of the batch loss (sum over its terms / N) and diagnostics, forwarded
        by ``model`` (from :meth:`training`, whose context the backward must run in too) over the
        batch's ``prefix`` and, for the KL term, the base model's ``reference`` prefix (None: forwarded
        here).

        ``clipped`` counts the terms whose weight was clipped: ``rho > rho_max`` for the single
        update, ``|ratio - 1| > clip_eps`` for the PPO variant (``epochs > 1``); ``rho`` sums and
        ``rho_max`` is the largest ``exp(log pi_train - log pi_sampler)`` (1 when the sampler is the
        trained model itself; a separate generation engine makes it differ).
        """
        cfg = self.config.train
        vocab, T = len(self.lm.tokenizer), self.config.agent.temperature
        C, logp_old = batch.credit, batch.logp_old  # (n,) each
        logp_ref = None
        if cfg.kl_coef > 0:
            with torch.no_grad(), self.lm.active(None) as base:
                logp_ref, _ = term_logprobs(base, batch, vocab, T, prefix=reference)
        logp, H = term_logprobs(model, batch, vocab, T, prefix=prefix)
        if cfg.epochs > 1:
            loss = clipped_policy_loss(logp, logp_old, C, H, eps=cfg.clip_eps, eta=cfg.entropy_coef,
                                       logp_ref=logp_ref, kappa=cfg.kl_coef)
        else:
            loss = policy_loss(logp, C, H, eta=cfg.entropy_coef, logp_sampler=logp_old,
                               rho_max=cfg.rho_max, logp_ref=logp_ref, kappa=cfg.kl_coef)
        with torch.no_grad():
            ratio = torch.exp(logp - logp_old)
            clipped = (ratio - 1).abs() > cfg.clip_eps if cfg.epochs > 1 else ratio > cfg.rho_max
            kl = k3(logp, logp_ref) if logp_ref is not None else torch.zeros_like(logp)
        return {
            "loss": loss * (logp.numel() / N),
            "entropy": H.sum() / N,
            "kl": kl.sum() / N,
            "clipped": clipped.float().sum() / N,
            "rho": ratio.sum() / N,
            "rho_max": ratio.max(),
        }

    # -- resume state ------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a resume needs besides the adapter's weights: the optimizer and the non-finite counters."""
        return {"optimizer": self.optimizer.state_dict(),
                "nonfinite": (self.nonfinite_steps, self.nonfinite_in_a_row)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.nonfinite_steps, self.nonfinite_in_a_row = state["nonfinite"]


def micro_batches(
    sequences: Sequence[Sequence[int]], budget: int, share_prefix: bool = True
) -> list[list[int]]:
    """Indices of ``sequences`` grouped into micro-batches that forward at most ``budget`` tokens each
    (a longer sequence gets a group of its own).

    With ``share_prefix``, what all sequences share is forwarded once for all groups
    (:class:`~detente.train.terms.BatchPrefix`) and what a group's sequences share once for the group,
    so a group costs ``sum(len) - shared * (n - 1) - P0`` for ``n`` sequences sharing ``shared``
    tokens, ``P0`` of them shared by all. Sorted by their tokens first, neighbours share the longest
    prefixes.
    """
    everyone = common_prefix(sequences) if share_prefix and len(sequences) > 1 else 0  # P0
    order = sorted(range(len(sequences)), key=lambda i: list(sequences[i]))
    groups: list[list[int]] = []
    for i in order:
        group = [*groups[-1], i] if groups else [i]
        shared = max(common_prefix([sequences[j] for j in group]), everyone) if share_prefix else 0
        cost = sum(len(sequences[j]) for j in group) - shared * (len(group) - 1) - everyone
        if groups and cost <= budget:
            groups[-1] = group
        else:
            groups.append([i])
    return groups
