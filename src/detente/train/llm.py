"""LoRA training of language-model agents: one loop for every algorithm (SPEC 3).

Each iteration:

1. **Rollout** — ``B`` games in seed groups of ``K`` (the games of a group
   share their seed, so the same hands / values / first speaker); who sits
   where follows ``config.coplayer`` and the opponent buffer (:func:`plan`).
2. **Credit** — rewards divided by the game's constant c, returns and the
   leave-one-out baseline within each block of K rows that share seed *and*
   seat, then naive / sum-of-rewards / Advantage Alignment credit
   (:mod:`detente.credit`): one ``C[row, t]`` per trained seat and round.
3. **Loss** — every action token the learner wrote in round t gets
   ``C[row, t]``; the token-level loss of SPEC 3 (:func:`~detente.train.loss.policy_loss`),
   or its PPO-clipped form when ``train.epochs > 1``.
4. **Step** — Adam on the learner's LoRA parameters, gradient-norm clip.
5. **Bookkeeping** — ``metrics.jsonl``, ``transcripts/iter_N.jsonl``, the
   resume state after every iteration, ``checkpoints/iter_N`` every
   ``train.checkpoint_every`` iterations, buffer snapshots.

All randomness of an iteration derives from ``(config.seed, iteration)``, so a
run resumed from its last state repeats exactly what an uninterrupted run does.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from detente.config import RunConfig, dump_config
from detente.credit import advantages, credit
from detente.eval.stats import behaviour
from detente.games import make_game
from detente.games.base import Game, Seat, other
from detente.policies.base import Policy
from detente.policies.llm import LLMPolicy, Trajectory
from detente.policies.llm_backend import LoRAModel
from detente.rollout.play import Episode, play, transcript
from detente.runs import CHECKPOINTS, CONFIG, METRICS, TRANSCRIPTS, append_jsonl, read_jsonl, write_atomic
from detente.train.loss import clipped_policy_loss, k3, policy_loss

LEARNER = "learner"
"""Adapter name of the agent being trained."""
LATEST = "latest.json"
"""``checkpoints/latest.json``: which checkpoint folder holds the resume state."""
ADAPTER_DIR = "adapter"
STATE_FILE = "state.pt"
BUFFER_DIR = "buffer"


# --------------------------------------------------------------------------
# Who plays whom
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Seating:
    """One game of an iteration's plan."""

    seed: int
    players: tuple[Policy, Policy]
    trained: tuple[Seat, ...]
    """Seats whose decisions train the learner."""
    group: int


def plan(config: RunConfig, iteration: int, learner: Policy, fixed: Policy | None,
         buffer: Sequence[Policy]) -> list[Seating]:
    """The games of ``iteration``: seed groups of K, co-players, trained seats.

    ``fixed`` is a fixed co-player (None: self-play). Self-play group: both
    seats are the learner and both are trained — except that with probability
    ``buffer.prob`` (when the buffer is on and not empty) the co-player is a past
    checkpoint drawn uniformly from ``buffer`` and only the learner's seat is
    trained. With a fixed or past co-player the learner sits in seat 0 in even
    groups and seat 1 in odd ones.
    """
    rng = random.Random(f"{config.seed}:plan:{iteration}")
    K = config.credit.group_size if config.credit.group_baseline else 1  # games per seed group
    games = []
    for group in range(config.train.games_per_iteration // K):
        seed = rng.getrandbits(31)
        coplayer = fixed
        if fixed is None and config.buffer.enabled and buffer and rng.random() < config.buffer.prob:
            coplayer = buffer[rng.randrange(len(buffer))]
        for _ in range(K):
            if coplayer is None:
                games.append(Seating(seed, (learner, learner), (0, 1), group))
            elif group % 2 == 0:
                games.append(Seating(seed, (learner, coplayer), (0,), group))
            else:
                games.append(Seating(seed, (coplayer, learner), (1,), group))
    return games


def training_rows(seatings: Sequence[Seating]) -> list[tuple[int, Seat]]:
    """``(slot, seat)`` of every trained seat, ordered so that each block of K
    consecutive rows shares one seed group and one seat (the leave-one-out groups)."""
    rows = []
    groups: dict[int, list[int]] = {}
    for slot, seating in enumerate(seatings):
        groups.setdefault(seating.group, []).append(slot)
    for slots in groups.values():
        for seat in seatings[slots[0]].trained:
            rows.extend((slot, seat) for slot in slots)
    return rows


# --------------------------------------------------------------------------
# Credit per trained seat and round
# --------------------------------------------------------------------------
def round_credit(config: RunConfig, games: Sequence[Game], rows: Sequence[tuple[int, Seat]],
                 reward_scale: float) -> tuple[Tensor, Tensor]:
    """``C`` (R, T) for the R trained rows, and the (R, T) mask of played rounds.

    Agent 1 is the row's seat, agent 2 the other seat of the same game; both
    advantages use the same leave-one-out blocks (SPEC 3).
    """
    R, T = len(rows), max(games[slot].n_rounds for slot, _ in rows)  # R rows, T rounds at most
    r1 = torch.zeros(R, T, dtype=torch.float64)
    r2 = torch.zeros(R, T, dtype=torch.float64)
    mask = torch.zeros(R, T, dtype=torch.bool)
    for i, (slot, seat) in enumerate(rows):
        rewards = torch.tensor(games[slot].round_rewards, dtype=torch.float64)  # (T_i, 2)
        n = rewards.shape[0]
        r1[i, :n] = rewards[:, seat] / reward_scale
        r2[i, :n] = rewards[:, other(seat)] / reward_scale
        mask[i, :n] = True
    K = config.credit.group_size if config.credit.group_baseline else None
    A1 = advantages(r1, config.credit.gamma, K, mask)
    A2 = advantages(r2, config.credit.gamma, K, mask)
    C = credit(config.credit.algorithm, A1, A2, gamma=config.credit.gamma, beta=config.credit.beta)
    return C * mask, mask


# --------------------------------------------------------------------------
# Token-level batch for the loss
# --------------------------------------------------------------------------
@dataclass
class TokenBatch:
    """The trained chats, padded: ``(M, L)`` token ids and per-token targets.

    ``M`` chats, ``L`` the longest chat. At position ``i`` of a chat the model
    predicts token ``i + 1``; ``action[m, i]`` says whether token ``i + 1`` was
    written by the learner (in a reply the game accepted).
    """

    ids: Tensor        # (M, L) long
    attention: Tensor  # (M, L) long, 1 on real tokens
    action: Tensor     # (M, L) bool, target token i+1 is an action token
    credit: Tensor     # (M, L) float, the round's credit at action positions
    logp_old: Tensor   # (M, L) float, sampler log-prob at action positions

    @property
    def n_tokens(self) -> int:
        return int(self.action.sum())


def token_batch(chats: Sequence[Trajectory], C: Tensor, pad_id: int) -> TokenBatch:
    """Lay out each chat's action tokens with the credit of the round they were written in."""
    M, L = len(chats), max(len(chat.token_ids) for chat in chats)
    ids = torch.full((M, L), pad_id, dtype=torch.long)
    attention = torch.zeros(M, L, dtype=torch.long)
    action = torch.zeros(M, L, dtype=torch.bool)
    credit_ = torch.zeros(M, L)
    logp_old = torch.zeros(M, L)
    for m, chat in enumerate(chats):
        n = len(chat.token_ids)
        ids[m, :n] = torch.tensor(chat.token_ids)
        attention[m, :n] = 1
        for record in chat.records:
            if record.rejected is not None or record.start is None or not record.token_ids:
                continue
            # token j of the reply sits at chat position start + j and is predicted at start + j - 1
            first = record.start - 1
            span = slice(first, first + len(record.token_ids))
            action[m, span] = True
            credit_[m, span] = float(C[m, record.round])
            logp_old[m, span] = torch.tensor(record.token_logprobs)
    return TokenBatch(ids, attention, action, credit_, logp_old)


def action_logprobs(model: Any, ids: Tensor, attention: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
    """At the n action positions: ``log pi(token i+1 | tokens <= i)`` and the entropy of
    ``pi(. | tokens <= i)`` over the whole vocabulary, both (n,)."""
    logits = action_logits(model, ids, attention, action)  # (n, V)
    targets = ids.roll(-1, dims=1)  # (M, L): the token each position predicts
    logp_all = torch.log_softmax(logits.float(), dim=-1)  # (n, V)
    logp = logp_all.gather(-1, targets[action].unsqueeze(-1)).squeeze(-1)  # (n,)
    entropy = -(logp_all.exp() * logp_all).sum(-1)  # (n,)
    return logp, entropy


def action_logits(model: Any, ids: Tensor, attention: Tensor, action: Tensor) -> Tensor:
    """The next-token logits at the n action positions only, (n, V).

    logits = lm_head(h) with h the decoder's last hidden state, taken at the
    action positions before the head: the (M, L, V) logits of every position
    (V ~ 50k-150k; most positions are prompt) are never formed. Models whose
    head does more than a linear map (soft-capping, a logit scale) take the
    full forward instead.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return model(input_ids=ids, attention_mask=attention).logits[action]
    hidden = base.get_decoder()(input_ids=ids, attention_mask=attention).last_hidden_state  # (M, L, H)
    return base.get_output_embeddings()(hidden[action])  # (n, V)


# --------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------
class LLMTrainer:
    """Trains the ``learner`` adapter of a shared :class:`LoRAModel` as ``config`` says."""

    def __init__(self, config: RunConfig, out_dir: Path, lm: LoRAModel | None = None) -> None:
        if config.agent.kind != "llm":
            raise ValueError(f"LLMTrainer needs agent.kind 'llm', got {config.agent.kind!r}")
        self.config = config
        self.out = Path(out_dir)
        self.game_factory = lambda: make_game(config.game.name, **config.game.params)
        probe = self.game_factory()
        self.reward_scale = config.credit.reward_scale or probe.reward_scale
        agent = config.agent
        self.lm = lm or LoRAModel.load(agent.model, lora_r=agent.lora_r, lora_alpha=agent.lora_alpha)
        if LEARNER not in self.lm.adapters:
            self.lm.add_adapter(LEARNER)
        self.params = self.lm.trainable_parameters(LEARNER)
        if config.train.gradient_checkpointing:
            self.lm.base.activation_checkpointing_enable({"use_reentrant": False})
        self.optimizer = torch.optim.Adam(self.params, lr=config.train.lr)
        self.learner = self._policy(LEARNER, "learner")
        self.fixed = self._coplayer(probe)
        self.buffer: list[LLMPolicy] = []
        self.iteration = 0

    def _policy(self, adapter: str | None, name: str) -> LLMPolicy:
        agent = self.config.agent
        return LLMPolicy(self.lm, adapter, name=name, temperature=agent.temperature,
                         system_prompt=agent.system_prompt, batch_size=agent.act_batch_size,
                         max_message_tokens=agent.max_message_tokens)

    def _coplayer(self, game: Game) -> Policy | None:
        name = self.config.coplayer
        if name == "self":
            return None
        if name == "base":
            return self._policy(None, "base")
        from detente.agents import make_agent

        return make_agent(name, game, models={self.config.agent.model: self.lm})

    # -- the loop -------------------------------------------------------------
    def train(self, on_iteration: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Run the remaining iterations; return the last metrics record."""
        record: dict[str, Any] = {}
        while self.iteration < self.config.train.iterations:
            record = self.step()
            append_jsonl(self.out / METRICS, record)
            self.save()
            if on_iteration is not None:
                on_iteration(record)
        return record

    def step(self) -> dict[str, Any]:
        """One iteration: rollout, credit, loss, optimizer step; returns its metrics."""
        began = time.perf_counter()
        cfg = self.config
        seatings = plan(cfg, self.iteration, self.learner, self.fixed, self.buffer)
        games = [self.game_factory() for _ in seatings]
        streams = [f"{cfg.seed}:{self.iteration}:{slot}" for slot in range(len(seatings))]
        episodes = play(games, [s.players for s in seatings], [s.seed for s in seatings], streams=streams)
        rollout_seconds = time.perf_counter() - began

        # ---- ALGORITHM: credit per trained seat and round (the only algorithm-specific step)
        rows = training_rows(seatings)
        C, _ = round_credit(cfg, games, rows, self.reward_scale)
        # ---- the SPEC 3 loss on the learner's tokens
        chats = [self.learner.trajectories[slot][seat] for slot, seat in rows]
        batch = token_batch(chats, C, self.lm.tokenizer.pad_token_id or 0)
        losses = self._update(batch)

        record = {
            "iteration": self.iteration,
            **self._rewards(episodes, rows),
            **self._behaviour(episodes, rows),
            "invalid_rate": self._invalid_rate(episodes, seatings),
            **losses,
            "tokens": batch.n_tokens,
            "seconds": time.perf_counter() - began,
            "perf/rollout_seconds": rollout_seconds,
        }
        self._write_transcripts(episodes, seatings)
        self.iteration += 1
        self._grow_buffer()
        return record

    def _update(self, batch: TokenBatch) -> dict[str, Any]:
        """Epochs over the batch in micro-batches of chats; one optimizer step per epoch."""
        cfg = self.config.train
        N = max(batch.n_tokens, 1)  # action tokens in the whole batch
        M = batch.ids.shape[0]
        sums = {"loss": 0.0, "entropy": 0.0, "kl": 0.0, "rho_clipped": 0.0}
        grad_norm = 0.0
        for _epoch in range(cfg.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for start in range(0, M, cfg.micro_batch):
                mb = slice(start, start + cfg.micro_batch)
                parts = self._micro_batch_loss(batch, mb, N)
                parts["loss"].backward()
                for key in sums:
                    sums[key] += float(parts[key].detach())
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
            self.optimizer.step()
        return {
            "loss": sums["loss"] / cfg.epochs,
            "entropy": sums["entropy"] / cfg.epochs,
            "kl": sums["kl"] / cfg.epochs if cfg.kl_coef > 0 else None,
            "rho_clip_frac": sums["rho_clipped"] / cfg.epochs,
            "grad_norm": grad_norm,
        }

    def _micro_batch_loss(self, batch: TokenBatch, mb: slice, N: int) -> dict[str, Tensor]:
        """This micro-batch's share of the batch loss (sum over its tokens / N) and diagnostics."""
        cfg = self.config.train
        L = int(batch.attention[mb].sum(1).max())  # trim the padding of the whole micro-batch
        ids, attention, action = batch.ids[mb, :L], batch.attention[mb, :L], batch.action[mb, :L]
        C, logp_old = batch.credit[mb, :L][action], batch.logp_old[mb, :L][action]  # (n,) each
        logp_ref = None
        if cfg.kl_coef > 0:
            with torch.no_grad(), self.lm.active(None) as reference:
                logp_ref, _ = action_logprobs(reference, ids, attention, action)
        with self.lm.active(LEARNER) as model:
            model.train(cfg.gradient_checkpointing)  # transformers checkpoints only in train mode
            logp, H = action_logprobs(model, ids, attention, action)
        if cfg.epochs > 1:
            loss = clipped_policy_loss(logp, logp_old, C, H, eps=cfg.clip_eps, eta=cfg.entropy_coef,
                                       logp_ref=logp_ref, kappa=cfg.kl_coef)
        else:
            loss = policy_loss(logp, C, H, eta=cfg.entropy_coef, logp_sampler=logp_old,
                               rho_max=cfg.rho_max, logp_ref=logp_ref, kappa=cfg.kl_coef)
        with torch.no_grad():
            rho = torch.exp(logp - logp_old)
            kl = k3(logp, logp_ref) if logp_ref is not None else torch.zeros_like(logp)
        return {
            "loss": loss * (logp.numel() / N),
            "entropy": H.sum() / N,
            "kl": kl.sum() / N,
            "rho_clipped": (rho > cfg.rho_max).float().sum() / N,
        }

    # -- metrics ---------------------------------------------------------------
    def _rewards(self, episodes: Sequence[Episode], rows: Sequence[tuple[int, Seat]]) -> dict[str, float]:
        """Mean unscaled reward per round of the learner's seats and of their co-players."""
        own = [episodes[s].game.returns()[seat] / episodes[s].game.n_rounds for s, seat in rows]
        theirs = [episodes[s].game.returns()[other(seat)] / episodes[s].game.n_rounds for s, seat in rows]
        return {
            "reward_mean": sum(own) / len(own),
            "reward/learner": sum(own) / len(own),
            "reward/coplayer": sum(theirs) / len(theirs),
        }

    def _behaviour(self, episodes: Sequence[Episode], rows: Sequence[tuple[int, Seat]]) -> dict[str, Any]:
        """The learner's behaviour figures (:func:`detente.eval.stats.behaviour`) over its seats."""
        return behaviour([(episodes[slot].game, seat) for slot, seat in rows])

    def _invalid_rate(self, episodes: Sequence[Episode], seatings: Sequence[Seating]) -> float:
        decisions = [d for e, s in zip(episodes, seatings, strict=True) for d in e.decisions
                     if s.players[d.seat] is self.learner]
        return sum(not d.valid for d in decisions) / max(len(decisions), 1)

    def _write_transcripts(self, episodes: Sequence[Episode], seatings: Sequence[Seating]) -> None:
        lines = [json.dumps(transcript(episode, seating.players, slot, iteration=self.iteration,
                                       seed=seating.seed, trained_seats=list(seating.trained)))
                 for slot, (episode, seating) in enumerate(zip(episodes, seatings, strict=True))
                 if slot < self.config.train.transcripts]
        if lines:
            write_atomic(self.out / TRANSCRIPTS / f"iter_{self.iteration}.jsonl", "\n".join(lines) + "\n")

    # -- opponent buffer ---------------------------------------------------------
    def _grow_buffer(self) -> None:
        """Every ``buffer.every`` iterations, snapshot the learner as a frozen past co-player."""
        cfg = self.config.buffer
        if not cfg.enabled or self.iteration % cfg.every:
            return
        name = f"past-{self.iteration}"
        self.lm.copy_adapter(LEARNER, name)
        self.lm.save_adapter(name, self.out / CHECKPOINTS / BUFFER_DIR / name)
        self.buffer.append(self._policy(name, name))

    # -- checkpoints -------------------------------------------------------------
    def save(self) -> None:
        """Write the resume state of the iterations done so far; keep every checkpoint_every-th."""
        root = self.out / CHECKPOINTS
        name = f"iter_{self.iteration}"
        folder = root / name
        self.lm.save_adapter(LEARNER, folder / ADAPTER_DIR)
        state = {"iteration": self.iteration, "optimizer": self.optimizer.state_dict(),
                 "torch_rng": torch.get_rng_state(), "buffer": [p.adapter for p in self.buffer]}
        tmp = folder / f".{STATE_FILE}.tmp"
        torch.save(state, tmp)
        tmp.replace(folder / STATE_FILE)
        previous = read_latest(self.out)
        write_atomic(root / LATEST, json.dumps({"iteration": self.iteration, "folder": name}))
        if previous is not None and previous != folder and not self._kept(previous):
            shutil.rmtree(previous, ignore_errors=True)

    def _kept(self, folder: Path) -> bool:
        iteration = int(folder.name.removeprefix("iter_"))
        return iteration % self.config.train.checkpoint_every == 0

    def resume(self) -> None:
        """Load the last saved state of ``out``; drop metrics of iterations after it."""
        folder = read_latest(self.out)
        if folder is None:
            raise FileNotFoundError(f"{self.out} has no checkpoint to resume from "
                                    f"({self.out / CHECKPOINTS / LATEST} is missing)")
        state = torch.load(folder / STATE_FILE, weights_only=False)
        self._load_learner(folder / ADAPTER_DIR)
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        for name in state["buffer"]:
            if name not in self.lm.adapters:
                self.lm.load_adapter(name, self.out / CHECKPOINTS / BUFFER_DIR / name)
            self.buffer.append(self._policy(name, name))
        self.iteration = state["iteration"]
        kept = [r for r in read_jsonl(self.out / METRICS) if r["iteration"] < self.iteration]
        write_atomic(self.out / METRICS, "".join(json.dumps(r) + "\n" for r in kept))

    def _load_learner(self, path: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        from detente.policies.llm_backend import ADAPTER_WEIGHTS

        weights = load_file(path / ADAPTER_WEIGHTS)
        result = set_peft_model_state_dict(self.lm.model, weights, adapter_name=LEARNER)
        missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
        if missing:
            raise ValueError(f"checkpoint {path} does not fit the learner adapter: unexpected {missing[:3]}")


def read_latest(run_dir: Path) -> Path | None:
    """The checkpoint folder ``checkpoints/latest.json`` points to, or None."""
    pointer = Path(run_dir) / CHECKPOINTS / LATEST
    if not pointer.exists():
        return None
    return pointer.parent / json.loads(pointer.read_text())["folder"]


def start_llm_run(config: RunConfig, out_dir: Path, *, resume: bool = False,
                  lm: LoRAModel | None = None) -> LLMTrainer:
    """A trainer for the llm run in ``out_dir``: a fresh run (its config written, metrics emptied) or,
    with ``resume``, the run's last saved state."""
    out_dir = Path(out_dir)
    torch.manual_seed(config.seed)  # the fresh adapter's initialisation
    trainer = LLMTrainer(config, out_dir, lm)
    if resume:
        trainer.resume()
    else:
        write_atomic(out_dir / CONFIG, dump_config(config))
        write_atomic(out_dir / METRICS, "")
    return trainer


def train_llm(config: RunConfig, out_dir: Path, on_iteration: Callable[[dict[str, Any]], None] | None = None,
              *, resume: bool = False, lm: LoRAModel | None = None) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) an llm run in ``out_dir``; return the last metrics."""
    return start_llm_run(config, out_dir, resume=resume, lm=lm).train(on_iteration)
