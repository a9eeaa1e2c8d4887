"""Memory-1 tabular learners on 2x2 matrix games: SPEC 4's small-network sanity check.

The policy is one cooperation logit per state (first round, then the previous
joint action from the agent's own side: CC, CD, DC, DD; see
:mod:`detente.policies.tabular`). Each iteration plays a batch of B games of T
rounds in torch, turns rewards into credit with :mod:`detente.credit` and
takes one Adam step on the loss of SPEC 3 with rho = 1 and kappa = 0::

    L = mean over decisions of [ -C * log pi(a | s) ] - eta * H

Who plays whom (``config.coplayer``): ``"self"`` — both seats use and train
the same logits, each seat's decisions credited with itself as agent 1 and the
other seat as agent 2; or a scripted strategy (``allc``, ``alld``, ``tft``,
``stft``, ``gtft``, ``grim``, ``wsls``, ``random:p``) played as its fixed
memory-1 table, or ``run:DIR``, the frozen table a tabular run saved in
``DIR/policy.json`` (:func:`coplayer_table`); the learner sits in seat 0.

Expected result (SPEC 4; Duque et al., arXiv 2406.14662): naive learners go
to always-defect, Advantage Alignment learners to tit-for-tat-like
reciprocity. :func:`play_tables` evaluates two tables exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Bernoulli

from detente.agent_spec import parse_agent
from detente.agents import preflight
from detente.behaviour import Figures
from detente.behaviour.matrix import matrix_figures, play_tables
from detente.config import CreditConfig, GameConfig, RunConfig
from detente.credit import pair_credit
from detente.errors import ConfigError
from detente.games import make_game
from detente.games.ipd import COOPERATE, MatrixGame, PayoffTable
from detente.policies.tabular import FIRST, STATES, joint_state, scripted_table
from detente.runs import (
    MetricsLine,
    TabularPolicyFile,
    read_policy,
    write_config,
    write_metrics,
    write_policy,
    write_run_info,
)
from detente.train.loss import policy_loss
from detente.train.metrics import MetricsLog

SELF = "self"


@dataclass(frozen=True)
class Rollout:
    """A batch of played games; seat axis first. B games, T rounds."""

    state: Tensor
    """(2, B, T) long: the table index each seat acted in."""
    action: Tensor
    """(2, B, T) long: 0 = cooperate (A), 1 = defect (B)."""
    reward: Tensor
    """(2, B, T) float: each seat's unscaled reward, 0 on padding."""
    mask: Tensor
    """(B, T) bool: True on rounds that were played."""


def train_tabular(
    config: RunConfig, out_dir: Path, on_iteration: Callable[[MetricsLine], None] | None = None
) -> dict[str, Any]:
    """Train a memory-1 table as ``config`` says; write ``out_dir``; return a summary.

    Writes ``run.json`` and ``config.yaml`` first, then one ``metrics.jsonl`` line per
    iteration (a previous file there is replaced; names: :data:`detente.runs.NAMESPACES`):
    ``reward/learner`` and ``reward/coplayer`` (unscaled reward per round of the learner's
    seats and of the seats facing them), ``behaviour/*`` (:mod:`detente.behaviour.matrix`,
    in the iteration's batch), ``loss/policy``, ``loss/entropy``, ``loss/grad_norm`` (before
    clipping), ``policy/coop_prob_<state>`` after the step and ``perf/seconds``. Saves the
    final table to ``policy.json``. ``on_iteration`` gets each metrics line.
    The summary holds the final table and its exact play (:func:`play_tables`)
    against the co-player and every ``config.eval_opponents`` entry.

    Runs on one torch thread (:func:`one_thread`).
    """
    preflight(config)
    with one_thread():
        return _train(config, Path(out_dir), on_iteration)


def _train(
    config: RunConfig, out_dir: Path, on_iteration: Callable[[MetricsLine], None] | None
) -> dict[str, Any]:
    game = matrix_game(config.game)
    eval_tables = {name: scripted_table(name) for name in config.eval_opponents}
    coplayer = None if config.coplayer == SELF else torch.tensor(coplayer_table(config.coplayer))
    learner_seats = [0, 1] if coplayer is None else [0]
    B, T = config.train.games_per_iteration, game.max_rounds  # B games, T rounds at most
    R = payoff_tensor(game.payoffs)  # (2, 2, 2)
    generator = torch.Generator().manual_seed(config.seed)
    logits, optimizer = new_table(config)

    write_run_info(out_dir, "tabular", game)
    write_config(out_dir, config)
    write_metrics(out_dir, [])
    log = MetricsLog(out_dir, config.train.tensorboard)
    began = time.perf_counter()
    for iteration in range(config.train.iterations):
        start = time.perf_counter()
        with torch.no_grad():
            own = torch.sigmoid(logits)  # (5,)
            tables = torch.stack([own, own if coplayer is None else coplayer])  # (2, 5)
        lengths = round_lengths(B, T, game.continuation_prob, config.credit.baseline_group_size, generator)
        batch = rollout(tables, R, lengths, generator)
        losses = update(logits, optimizer, batch, config, learner_seats, game.reward_scale)
        line = MetricsLine(iteration=iteration, values={
            **batch_figures(batch, learner_seats), **losses, **table_figures(logits),
            "perf/seconds": time.perf_counter() - start,
        })
        log.write(line)
        if on_iteration is not None:
            on_iteration(line)
    log.close()

    final = logits.detach().tolist()
    write_policy(out_dir, TabularPolicyFile.from_logits(final, config.game.name))
    table = torch.sigmoid(torch.tensor(final)).tolist()
    opponent = table if coplayer is None else coplayer.tolist()
    return {
        "iterations": config.train.iterations,
        "seconds": time.perf_counter() - began,
        "policy": dict(zip(STATES, table, strict=True)),
        "play": play_tables(table, opponent, game.payoffs, T, game.continuation_prob),
        "eval": {name: play_tables(table, other, game.payoffs, T, game.continuation_prob)
                 for name, other in eval_tables.items()},
    }


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one torch thread, then restore the thread count.

    The tensors of a tabular run are tiny: on a shared 2-core machine two
    intra-op threads made each step about 30x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def new_table(config: RunConfig) -> tuple[torch.nn.Parameter, torch.optim.Optimizer]:
    """A learner's (5,) cooperation logits, ``config.agent.init_logit`` (one for every state, or one
    per state), and their Adam optimizer."""
    start = torch.tensor(config.agent.init_logit, dtype=torch.float32)
    logits = torch.nn.Parameter(start.expand(len(STATES)).clone())  # (5,)
    return logits, torch.optim.Adam([logits], lr=config.train.lr)


def coplayer_table(spec: str) -> tuple[float, ...]:
    """Cooperation probabilities (5,) of a fixed co-player: a scripted name, or ``run:DIR``.

    ``run:DIR`` is the final table of the tabular run in ``DIR`` (its ``policy.json``).
    """
    agent = parse_agent(spec)
    if agent.kind == "learner":
        raise ConfigError(f"coplayer {spec!r} is a second live learner, not a fixed table: "
                          "train_tabular_pair trains both (detente train does)")
    if agent.kind == "run":
        return tuple(read_policy(agent.run_dir).cooperate_prob)
    return scripted_table(agent.value)


def update(
    logits: torch.nn.Parameter,
    optimizer: torch.optim.Optimizer,
    batch: Rollout,
    config: RunConfig,
    learner_seats: Sequence[int],
    game_scale: float,
) -> dict[str, float]:
    """One step on ``batch``: credit -> ``L = mean[-C log pi(a|s)] - eta H`` -> clipped Adam step.

    ``logits``: (5,) cooperation logits of the learner. Returns ``loss/policy``,
    ``loss/entropy`` (mean over the learner's decisions) and ``loss/grad_norm`` (before clipping).
    """
    S, (B, T) = len(learner_seats), batch.mask.shape  # S learner seats, B games, T rounds
    scale = config.credit.reward_scale or game_scale  # c of SPEC 3

    # ALGO LOGIC: credit (SPEC 3), each learner seat as agent 1, the other seat as agent 2
    C = seat_credit(batch.reward / scale, batch.mask, config.credit, learner_seats)  # (S, B, T)

    dist = Bernoulli(logits=logits[batch.state[learner_seats]])  # (S, B, T)
    logp = dist.log_prob((batch.action[learner_seats] == COOPERATE).float())  # (S, B, T)
    H = dist.entropy()  # (S, B, T)
    mask = batch.mask.expand(S, B, T)  # (S, B, T)
    loss = policy_loss(logp, C, H, eta=config.train.entropy_coef, mask=mask)
    optimizer.zero_grad()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_([logits], config.train.grad_clip)
    optimizer.step()
    return {"loss/policy": loss.item(), "loss/entropy": H[mask].mean().item(),
            "loss/grad_norm": grad_norm.item()}


def payoff_tensor(payoffs: PayoffTable) -> Tensor:
    """``R[a0, a1, seat]``: (2, 2, 2) rewards of both seats for each joint action."""
    return torch.tensor(payoffs, dtype=torch.float32)


def round_lengths(
    B: int, T: int, continuation_prob: float | None, group_size: int | None, generator: torch.Generator
) -> Tensor:
    """(B,) game lengths: T, or 1 + Geometric(continuation_prob) capped at T as the game draws them.

    Games of one seed group (``group_size`` consecutive rows) share their length.
    """
    if continuation_prob is None:
        return torch.full((B,), T)
    K = group_size or 1  # K games per group
    go_on = torch.rand(B // K, T - 1, generator=generator) < continuation_prob  # (B/K, T-1)
    lengths = 1 + go_on.long().cumprod(dim=1).sum(dim=1)  # (B/K,)
    return lengths.repeat_interleave(K)  # (B,)


def rollout(tables: Tensor, R: Tensor, lengths: Tensor, generator: torch.Generator) -> Rollout:
    """Play B games, seat 0 with ``tables[0]`` and seat 1 with ``tables[1]``.

    ``tables``: (2, 5) cooperation probabilities; ``R``: (2, 2, 2) payoffs;
    ``lengths``: (B,) rounds of each game; T, the longest, sets the width of the
    returned (2, B, T) tensors.
    """
    B, T = lengths.shape[0], int(lengths.max())  # B games, T rounds
    state = torch.empty(2, B, T, dtype=torch.long)
    action = torch.empty(2, B, T, dtype=torch.long)
    s = torch.full((2, B), FIRST)  # (2, B)
    for t in range(T):
        p = tables.gather(1, s)  # (2, B) P(cooperate)
        a = (torch.rand(2, B, generator=generator) >= p).long()  # (2, B), 1 = defect
        state[:, :, t], action[:, :, t] = s, a
        s = joint_state(a, a.flip(0))  # (2, B): own move, other's move
    mask = torch.arange(T) < lengths[:, None]  # (B, T)
    reward = R[action[0], action[1]].permute(2, 0, 1) * mask  # (B, T, 2) -> (2, B, T)
    return Rollout(state, action, reward, mask)


def seat_credit(r: Tensor, mask: Tensor, config: CreditConfig, learner_seats: Sequence[int]) -> Tensor:
    """Credit (S, B, T) of each learner seat from scaled rewards ``r`` (2, B, T) and ``mask`` (B, T).

    Seat s is agent 1 and the other seat agent 2 (:func:`detente.credit.pair_credit`).
    """
    return torch.stack([pair_credit(r[s], r[1 - s], config.algorithm, gamma=config.gamma, beta=config.beta,
                                    group_size=config.baseline_group_size, mask=mask)
                        for s in learner_seats])


def batch_figures(batch: Rollout, seats: Sequence[int]) -> Figures:
    """``reward/learner``, ``reward/coplayer`` and ``behaviour/*`` of ``seats`` in the sampled batch.

    The rewards are per round, of the learner's seats and of the seats facing them; the behaviour
    figures are :func:`~detente.behaviour.matrix.matrix_figures` over every (game, seat) pair.
    """
    S, B, T = len(seats), *batch.mask.shape  # S learner seats, B games, T rounds
    others = [1 - s for s in seats]
    played = batch.mask.expand(S, B, T)  # (S, B, T)
    figures = matrix_figures(batch.action[seats].reshape(S * B, T), batch.action[others].reshape(S * B, T),
                             played.reshape(S * B, T))
    return {
        "reward/learner": batch.reward[seats][played].mean().item(),
        "reward/coplayer": batch.reward[others][played].mean().item(),
        **{f"behaviour/{name}": value for name, value in figures.items()},
    }


def table_figures(logits: Tensor) -> Figures:
    """``policy/coop_prob_<state>``: the table's P(cooperate) in each state."""
    return {f"policy/coop_prob_{s}": p for s, p in zip(STATES, torch.sigmoid(logits.detach()).tolist(),
                                                        strict=True)}


def matrix_game(config: GameConfig) -> MatrixGame:
    """The game ``config`` describes; ``ValueError`` unless it is an iterated 2x2 matrix game."""
    game = make_game(config.name, **config.params)
    if not isinstance(game, MatrixGame):
        raise ValueError(f"tabular learners play 2x2 matrix games, not {config.name!r}")
    return game
