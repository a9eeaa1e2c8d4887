"""LoRA training of language-model agents: one loop for every algorithm (SPEC 3).

Each iteration:

1. **Rollout** — ``B`` games in seed groups of ``K`` (the games of a group
   share their seed, so the same hands / values / first speaker); who sits
   where and which seats train follows :func:`~detente.train.seating.plan`
   (co-player, opponent buffer, a learner co-player).
2. **Credit** — rewards divided by the game's constant c, returns and the
   leave-one-out baseline within each block of K rows that share seed *and*
   seat, then naive / sum-of-rewards / Advantage Alignment credit
   (:func:`detente.credit.pair_credit`): one ``C[row, t]`` per trained seat and round.
3. **Loss** — every step the learner took in round t (a draw over legal
   options, or a message token) gets ``C[row, t]``, with ``log pi`` exactly as
   it was sampled (:mod:`detente.train.terms`); the loss of SPEC 3
   (:func:`~detente.train.loss.policy_loss`), or its PPO-clipped form when
   ``train.epochs > 1``, normalised by the number of terms in the batch.
4. **Step** — Adam on the learner's LoRA parameters, gradient-norm clip. An
   update whose loss or gradient is not finite is skipped and counted
   (``nonfinite_steps``); ``train.max_nonfinite`` in a row stop the run.
   Steps 2-4 are :class:`~detente.train.adapter.TrainedAdapter`'s.
5. **Bookkeeping** — ``metrics.jsonl``, ``transcripts/iter_N.jsonl``, the
   resume state after every iteration, ``checkpoints/iter_N`` every
   ``train.checkpoint_every`` iterations, buffer snapshots.

**Two learners** (``coplayer: learner:CONFIG``, :func:`~detente.config.coplayer_learner`):
a second adapter, ``coplayer``, on the same base model, with CONFIG's LoRA
shape, sampling settings, credit rule and update settings and its own Adam.
Every game seats one learner in each seat (alternating between seed groups,
as for any fixed co-player) and both seats train; each adapter runs steps 2-4
on its own seats, agent 1 itself and agent 2 the other learner::

    C^learner  = credit(algorithm_learner,  A^learner,  A^coplayer)
    C^coplayer = credit(algorithm_coplayer, A^coplayer, A^learner)

Its figures are logged under ``coplayer/`` (its reward is ``reward/coplayer``);
checkpoints hold its adapter in ``coplayer/`` and its optimizer in ``state.pt``.

All randomness of an iteration derives from ``(config.seed, iteration)``, so a
run resumed from its last state repeats exactly what an uninterrupted run does.
"""

from __future__ import annotations

import io
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from detente.agents import preflight
from detente.atomic import fresh_dir, sweep_temp
from detente.behaviour import behaviour
from detente.config import RESUMABLE, RunConfig, coplayer_learner
from detente.credit import pair_credit
from detente.errors import ConfigError, TrainingStopped
from detente.games import make_game
from detente.games.base import Game, Seat, other
from detente.policies.llm import LLMPolicy
from detente.policies.llm_backend import LoRAModel
from detente.progress import OnProgress, silent
from detente.rollout.play import Episode
from detente.runs import (
    ADAPTER_DIR,
    BUFFER_DIR,
    CHECKPOINTS,
    CONFIG,
    COPLAYER_ADAPTER_DIR,
    COPLAYER_CONFIG,
    LATEST,
    MetricsLine,
    checkpoint_dir,
    coplayer_figures,
    read_config_data,
    read_latest,
    read_metrics,
    state_path,
    stored_config,
    transcript_path,
    write_configs,
    write_latest,
    write_metrics,
    write_run_info,
    write_state,
    write_transcripts,
)
from detente.train.adapter import TrainedAdapter, policy_maker
from detente.train.buffer import OpponentBuffer
from detente.train.metrics import MetricsLog
from detente.train.rollout import LocalRollout, RolloutBackend, RolloutResult
from detente.train.seating import LEARNER, Seating, coplayer_policy, plan, training_rows
from detente.train.terms import TermBatch, update_tokens

MAX_LOST = 0.05
"""Largest share of a batch's action steps that may be unplaceable before training stops."""
DATA_STATS = ("template_resets", "truncated", "wrapped")
"""Learner counters logged per iteration as ``data/*``: chats re-tokenised because the template
re-rendered history, messages cut at the token limit, messages wrapped in the game's delimiters."""


# --------------------------------------------------------------------------
# Credit per trained seat and round
# --------------------------------------------------------------------------
def round_credit(config: RunConfig, games: Sequence[Game], rows: Sequence[tuple[int, Seat]],
                 reward_scale: float) -> tuple[Tensor, Tensor]:
    """``C`` (R, T) for the R trained rows, and the (R, T) mask of played rounds.

    Agent 1 is the row's seat, agent 2 the other seat of the same game (whoever sat there: the
    live learner, a past checkpoint, a fixed co-player); both advantages use the same
    leave-one-out blocks (SPEC 3), in which the two seats of one game never count in each
    other's baseline.
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
    c = config.credit
    episode = torch.tensor([slot for slot, _ in rows])  # (R,) the game of each row
    C = pair_credit(r1, r2, c.algorithm, gamma=c.gamma, beta=c.beta, group_size=c.baseline_group_size,
                    mask=mask, episode=episode)
    return C * mask, mask


# --------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------
COPLAYER_ADAPTER = "coplayer"
"""Adapter (and policy) name of a learner co-player (``coplayer: learner:CONFIG``)."""


class LLMTrainer:
    """Trains the ``learner`` adapter of a shared :class:`LoRAModel` as ``config`` says; with a learner
    co-player (``coplayer: learner:CONFIG``) also a second adapter, ``coplayer``, as CONFIG says."""

    def __init__(self, config: RunConfig, out_dir: Path, lm: LoRAModel | None = None,
                 on_progress: OnProgress = silent) -> None:
        if config.agent.kind != "llm":
            raise ValueError(f"LLMTrainer needs agent.kind 'llm', got {config.agent.kind!r}")
        self.config = config
        self.out = Path(out_dir)
        self.game_factory = lambda: make_game(config.game.name, **config.game.params)
        probe = self.game_factory()
        self.game_scale = probe.reward_scale
        """The game's reward constant (c of SPEC 3 when a config sets none)."""
        agent = config.agent
        self.lm = lm or LoRAModel.load(agent.model, lora_r=agent.lora_r, lora_alpha=agent.lora_alpha)
        if LEARNER not in self.lm.adapters:
            self.lm.add_adapter(LEARNER)
        self.coplayer_config = coplayer_learner(config)
        """The second learner's config (``coplayer: learner:CONFIG``), None for any other co-player."""
        second = self.coplayer_config
        if second is not None and COPLAYER_ADAPTER not in self.lm.adapters:
            self.lm.add_adapter(COPLAYER_ADAPTER, r=second.agent.lora_r, alpha=second.agent.lora_alpha)
        if any(c.train.gradient_checkpointing for c in (config, second) if c is not None):
            self.lm.enable_checkpointing()
        self.main = TrainedAdapter(self.lm, LEARNER, config)
        self.second = None if second is None else TrainedAdapter(self.lm, COPLAYER_ADAPTER, second)
        self.learner = self.main.policy
        self.fixed = coplayer_policy(config, probe, self.lm) if self.second is None else self.second.policy
        self.buffer = OpponentBuffer(self.lm, LEARNER, self.out / CHECKPOINTS / BUFFER_DIR,
                                     config.buffer.max_size, policy_maker(self.lm, config))
        self.rollout = self._rollout_backend(on_progress)
        self.iteration = 0

    def _rollout_backend(self, on_progress: OnProgress) -> RolloutBackend:
        """Where the iterations' games are played (``rollout.backend``); a backend that plays in parts
        (chunks on Ray workers) tells ``on_progress`` after each."""
        if self.config.rollout.backend == "local":
            return LocalRollout(self.learner, None if self.second is None else self.second.policy)
        from detente.train.ray_rollout import RayRollout

        return RayRollout(self.config, self.lm, self.learner, self.fixed, self.buffer, on_progress)

    # -- the loop -------------------------------------------------------------
    def train(self, on_iteration: Callable[[MetricsLine], None] | None = None) -> MetricsLine | None:
        """Run the remaining iterations; return the last metrics line (None if none was left)."""
        line = None
        log = MetricsLog(self.out, self.config.train.tensorboard, self.iteration)
        try:
            while self.iteration < self.config.train.iterations:
                line = self.step()
                log.write(line)
                self.save()
                if on_iteration is not None:
                    on_iteration(line)
        finally:
            log.close()
            self.rollout.close()
        return line

    def step(self) -> MetricsLine:
        """One iteration: rollout, then credit, loss and optimizer step of each trained adapter; returns
        its metrics (a learner co-player's under ``coplayer/``)."""
        began = time.perf_counter()
        cfg = self.config
        seatings = plan(cfg, self.iteration, self.learner, self.fixed, self.buffer.policies)
        streams = [f"{cfg.seed}:{self.iteration}:{slot}" for slot in range(len(seatings))]
        rollout = self.rollout.run(seatings, streams, self.game_factory, cfg.train.transcripts,
                                   self.iteration)
        rollout_seconds = time.perf_counter() - began
        rows = training_rows(seatings)
        values = self._train_on(self.main, rows, seatings, rollout, rollout.stats)
        if self.second is not None:
            values |= coplayer_figures(self._train_on(self.second, rows, seatings, rollout,
                                                      rollout.coplayer_stats))
        line = MetricsLine(iteration=self.iteration, values={
            **values,
            "perf/seconds": time.perf_counter() - began,
            "perf/rollout_seconds": rollout_seconds,
            **rollout.perf,
        })
        if rollout.transcripts:
            write_transcripts(transcript_path(self.out, self.iteration), rollout.transcripts)
        self.iteration += 1
        if cfg.buffer.enabled and self.iteration % cfg.buffer.every == 0:
            self.buffer.add(self.iteration)
        return line

    @property
    def reward_scale(self) -> float:
        """c of SPEC 3 for the main learner."""
        return self.reward_scale_of(self.config)

    def reward_scale_of(self, config: RunConfig) -> float:
        """c of SPEC 3 for a learner of ``config``: its ``credit.reward_scale``, else the game's."""
        return config.credit.reward_scale or self.game_scale

    def _train_on(self, trained: TrainedAdapter, rows: Sequence[tuple[int, Seat]],
                  seatings: Sequence[Seating], rollout: RolloutResult, stats: Counter[str]) -> dict[str, Any]:
        """Credit, loss and step of ``trained`` on the rows where it sat; its figures (``stats``: the
        counters of its policy over the rollout)."""
        episodes = rollout.episodes
        mine = [(slot, seat) for slot, seat in rows if seatings[slot].players[seat] is trained.policy]
        # ---- ALGORITHM: credit per trained seat and round (the only algorithm-specific step),
        # with this adapter's own credit rule; agent 2 is whoever sat in the other seat
        C, _ = round_credit(trained.config, [e.game for e in episodes], mine,
                            self.reward_scale_of(trained.config))
        # ---- the SPEC 3 loss on this adapter's steps
        chats = [rollout.learner_chats[row] for row in mine]
        batches = trained.term_batches(chats, C)
        data = {key: stats[key] for key in DATA_STATS}
        data["lost_terms"] = sum(b.lost for b in batches)
        self._check_placed(batches, data)
        losses = trained.update(batches)
        self._check_finite(trained)

        figures = behaviour([(episodes[slot].game, seat) for slot, seat in mine])
        return {
            **self._rewards(episodes, mine),
            **{f"behaviour/{name}": value for name, value in figures.items()},
            **losses,
            "data/invalid_rate": self._invalid_rate(episodes, seatings, trained.policy),
            "data/terms": sum(b.n_terms for b in batches),
            "data/update_tokens": update_tokens(batches),
            "data/update_tokens_unshared": sum(b.row_tokens for b in batches),
            "data/tokens": sum(len(r.token_ids) for chat in chats for r in chat if r.rejected is None),
            **{f"data/{key}": value for key, value in data.items()},
        }

    def _check_placed(self, batches: Sequence[TermBatch], data: dict[str, int]) -> None:
        """Stop when more than :data:`MAX_LOST` of the batch's steps lost their place in their chat."""
        lost = data["lost_terms"]
        total = lost + sum(b.n_terms for b in batches)
        if total and lost / total > MAX_LOST:
            raise TrainingStopped(
                f"iteration {self.iteration}: {lost} of {total} action steps ({lost / total:.0%}) cannot be "
                f"placed in their chats: the chat template of model {self.config.agent.model!r} renders "
                f"earlier turns differently as the chat grows ({data['template_resets']} re-tokenised "
                "chats); detente needs a chat template whose rendering of past turns never changes")

    def _check_finite(self, trained: TrainedAdapter) -> None:
        """Stop after ``train.max_nonfinite`` updates of ``trained`` in a row were skipped as not finite."""
        limit = trained.config.train.max_nonfinite
        if trained.nonfinite_in_a_row < limit:
            return
        last = read_latest(self.out)
        resume = f"the resume point is {last.name}" if last is not None else "no checkpoint was saved"
        whose = "" if trained is self.main else " of the learner co-player"
        raise TrainingStopped(
            f"iteration {self.iteration}: the loss or gradient{whose} was NaN or infinite in {limit} updates "
            f"in a row (train.max_nonfinite = {limit}); stopped, {resume}")

    # -- metrics ---------------------------------------------------------------
    def _rewards(self, episodes: Sequence[Episode], rows: Sequence[tuple[int, Seat]]) -> dict[str, float]:
        """Mean unscaled reward per round of the trained seats ``rows`` and of their co-players."""
        own = [episodes[s].game.returns()[seat] / episodes[s].game.n_rounds for s, seat in rows]
        theirs = [episodes[s].game.returns()[other(seat)] / episodes[s].game.n_rounds for s, seat in rows]
        return {"reward/learner": sum(own) / len(own), "reward/coplayer": sum(theirs) / len(theirs)}

    def _invalid_rate(self, episodes: Sequence[Episode], seatings: Sequence[Seating],
                      policy: LLMPolicy) -> float:
        decisions = [d for e, s in zip(episodes, seatings, strict=True) for d in e.decisions
                     if s.players[d.seat] is policy]
        return sum(not d.valid for d in decisions) / max(len(decisions), 1)

    # -- checkpoints -------------------------------------------------------------
    def save(self) -> None:
        """Write the resume state of the iterations done so far; keep every checkpoint_every-th."""
        folder = checkpoint_dir(self.out, self.iteration)
        self.lm.save_adapter(LEARNER, folder / ADAPTER_DIR)
        state = {"iteration": self.iteration, **self.main.state(), "torch_rng": torch.get_rng_state(),
                 "buffer": self.buffer.names}
        if self.second is not None:
            self.lm.save_adapter(COPLAYER_ADAPTER, folder / COPLAYER_ADAPTER_DIR)
            state[COPLAYER_ADAPTER] = self.second.state()
        data = io.BytesIO()
        torch.save(state, data)
        write_state(folder, data.getvalue())
        write_configs(folder, self.config, self.coplayer_config)  # what this checkpoint was trained with
        previous = read_latest(self.out)
        write_latest(self.out, self.iteration)
        if previous is not None and previous != folder and not self._kept(previous):
            shutil.rmtree(previous, ignore_errors=True)

    def _kept(self, folder: Path) -> bool:
        iteration = int(folder.name.removeprefix("iter_"))
        return iteration % self.config.train.checkpoint_every == 0

    def resume(self) -> None:
        """Load the last saved state of ``out``; drop metrics of iterations after it."""
        folder = resume_point(self.out)
        state = torch.load(state_path(folder), weights_only=False)
        sweep_temp(self.out)
        self.lm.load_weights(LEARNER, folder / ADAPTER_DIR)
        self.main.load_state(state)
        if self.second is not None:
            if COPLAYER_ADAPTER not in state:
                raise ConfigError(f"{folder} holds no learner co-player to resume; train the run afresh")
            self.lm.load_weights(COPLAYER_ADAPTER, folder / COPLAYER_ADAPTER_DIR)
            self.second.load_state(state[COPLAYER_ADAPTER])
        torch.set_rng_state(state["torch_rng"])
        self.buffer.restore(state["buffer"])
        self.iteration = state["iteration"]
        done = read_metrics(self.out, tolerate_torn_tail=True)
        write_metrics(self.out, [line for line in done if line.iteration < self.iteration])


def resume_point(run_dir: Path, config: RunConfig | None = None, force: bool = False) -> Path:
    """The checkpoint folder a resume of ``run_dir`` starts from.

    With ``config``, it must equal the config that checkpoint was trained with, or a
    :class:`~detente.errors.ConfigError` names the keys that differ (``force`` accepts it).
    """
    folder = read_latest(run_dir)
    if folder is None:
        raise ConfigError(f"{run_dir} has no checkpoint to resume from (no {CHECKPOINTS}/{LATEST})")
    if config is not None and not force:
        changed = [change for change in _changes(folder / CONFIG, stored_config(config))
                   if not change.startswith(tuple(f"{key}:" for key in RESUMABLE))]
        second = coplayer_learner(config)
        if second is not None and (folder / COPLAYER_CONFIG).is_file():
            changed += [f"learner co-player {change}"
                        for change in _changes(folder / COPLAYER_CONFIG, second)]
        if changed:
            raise ConfigError(f"{Path(run_dir) / CONFIG} differs from the config its checkpoint "
                              f"{folder.name} was trained with: {'; '.join(changed[:4])}"
                              f"{' ...' if len(changed) > 4 else ''}; pass --force to resume with it")
    return folder


def _changes(trained_with: Path, config: RunConfig) -> list[str]:
    """How ``config`` differs from the config file a checkpoint was trained with."""
    trained = with_defaults(read_config_data(trained_with), RunConfig().model_dump(mode="json"))
    return config_changes(trained, config.model_dump(mode="json"))


def with_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every key it lacks (at any depth) taken from ``defaults``: a key detente added after
    a checkpoint was written meant its default then."""
    filled = dict(data)
    for key, default in defaults.items():
        if key not in filled:
            filled[key] = default
        elif isinstance(filled[key], dict) and isinstance(default, dict):
            filled[key] = with_defaults(filled[key], default)
    return filled


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every dotted key whose value differs between two config dumps."""
    changes = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changes


def start_llm_run(config: RunConfig, out_dir: Path, *, resume: bool = False, force: bool = False,
                  lm: LoRAModel | None = None, on_progress: OnProgress = silent) -> LLMTrainer:
    """A trainer for the llm run in ``out_dir``: a fresh run in an emptied folder (anything there is
    deleted; its config written first) or, with ``resume``, the run's last saved state (``force``:
    even if ``config.yaml`` was edited since). ``on_progress`` follows a rollout that plays in parts."""
    out_dir = Path(out_dir)
    preflight(config, learner_model=lm is None)
    if resume:
        resume_point(out_dir, config, force)  # before a model loads
    else:
        fresh_dir(out_dir)
        write_run_info(out_dir, "llm", make_game(config.game.name, **config.game.params))
        write_configs(out_dir, config, coplayer_learner(config))
    torch.manual_seed(config.seed)  # the fresh adapter's initialisation
    trainer = LLMTrainer(config, out_dir, lm, on_progress)
    if resume:
        trainer.resume()
    return trainer


def train_llm(
    config: RunConfig, out_dir: Path, on_iteration: Callable[[MetricsLine], None] | None = None, *,
    resume: bool = False, force: bool = False, lm: LoRAModel | None = None, on_progress: OnProgress = silent,
) -> MetricsLine | None:
    """Train (or, with ``resume``, continue) an llm run in ``out_dir``; return the last metrics line.
    ``on_progress`` follows the chunks of a rollout on Ray workers."""
    trainer = start_llm_run(config, out_dir, resume=resume, force=force, lm=lm, on_progress=on_progress)
    return trainer.train(on_iteration)
