"""Two live memory-1 learners trained in one loop: learner A in seat 0, learner B in seat 1.

Each learner is a table of :mod:`detente.train.tabular` with its own config
(credit rule, lr, init_logit, entropy bonus). Every iteration plays one batch
of B games of A against B, then each learner takes its own Adam step on the
same batch, with itself as agent 1 and the other as agent 2 (SPEC 3)::

    C^A = credit(algorithm_A, A^seat0, A^seat1)     C^B = credit(algorithm_B, A^seat1, A^seat0)
    L^X = mean over X's decisions of [ -C^X * log pi_X(a | s) ] - eta_X * H_X

The game, seed, games per iteration and iterations are A's; B's config gives
only its learner (``agent``, ``credit``, ``train.lr``, ``train.entropy_coef``,
``train.grad_clip``) and its ``eval_opponents``.

Use: does an opponent-shaping learner shape a naive one? Measured
(docs/reproduction.md, "Two learners"): a naive learner co-trained with a
naive one goes to always-defect, as in self-play; co-trained with Advantage
Alignment at beta 2 it ends nearly always-cooperate while the AdAlign learner
opens with D and then plays tit-for-tat; at the IPD preset's beta 0.5 it is
not shaped into cooperation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from detente.behaviour.matrix import play_tables
from detente.config import RunConfig, baseline_problem
from detente.games.ipd import MatrixGame
from detente.policies.tabular import STATES, scripted_table
from detente.runs import (
    COPLAYER_POLICY_FILE,
    POLICY_FILE,
    MetricsLine,
    TabularPolicyFile,
    coplayer_figures,
    write_configs,
    write_metrics,
    write_policy,
    write_run_info,
)
from detente.train.metrics import MetricsLog
from detente.train.tabular import (
    batch_figures,
    matrix_game,
    new_table,
    one_thread,
    payoff_tensor,
    rollout,
    round_lengths,
    table_figures,
    update,
)


def train_tabular_pair(
    config_a: RunConfig,
    config_b: RunConfig,
    out_dir: Path,
    on_iteration: Callable[[MetricsLine], None] | None = None,
) -> dict[str, Any]:
    """Train learner A (seat 0) against learner B (seat 1); write ``out_dir``; return a summary.

    Writes ``run.json``, ``config.yaml`` (A's) and ``coplayer_config.yaml`` (B's) first, then
    one ``metrics.jsonl`` line per iteration (a previous file is replaced): ``reward/learner``
    and ``reward/coplayer`` (unscaled reward per round of seats 0 and 1) and, for A unprefixed
    and for B under ``coplayer/``: ``behaviour/*`` (:mod:`detente.behaviour.matrix`),
    ``loss/policy``, ``loss/entropy``, ``loss/grad_norm`` (before clipping) and
    ``policy/coop_prob_<state>``; and ``perf/seconds``. Saves the final tables to
    ``policy.json`` (A) and ``coplayer_policy.json`` (B).

    The summary holds both final tables (``policy``, ``coplayer_policy``),
    their exact play (:func:`play_tables`) from each side (``play`` is A's
    view, ``coplayer_play`` B's) and each against its config's
    ``eval_opponents`` (``eval``, ``coplayer_eval``).
    """
    _check_pair(config_a, config_b)
    with one_thread():
        return _train_pair(config_a, config_b, Path(out_dir), on_iteration)


def _train_pair(
    config_a: RunConfig,
    config_b: RunConfig,
    out_dir: Path,
    on_iteration: Callable[[MetricsLine], None] | None,
) -> dict[str, Any]:
    game = matrix_game(config_a.game)
    configs = (config_a, config_b)  # seat s is learner configs[s]
    B, T = config_a.train.games_per_iteration, game.max_rounds  # B games, T rounds at most
    R = payoff_tensor(game.payoffs)  # (2, 2, 2)
    generator = torch.Generator().manual_seed(config_a.seed)
    learners = [new_table(config) for config in configs]  # (logits (5,), optimizer) per seat

    write_run_info(out_dir, "tabular_pair", game)
    write_configs(out_dir, config_a, config_b)
    write_metrics(out_dir, [])
    log = MetricsLog(out_dir, config_a.train.tensorboard)
    began = time.perf_counter()
    for iteration in range(config_a.train.iterations):
        start = time.perf_counter()
        with torch.no_grad():
            tables = torch.stack([torch.sigmoid(logits) for logits, _ in learners])  # (2, 5)
        lengths = round_lengths(B, T, game.continuation_prob, config_a.credit.baseline_group_size, generator)
        batch = rollout(tables, R, lengths, generator)
        # ALGO LOGIC: each seat's learner steps on the same batch, credited with itself as agent 1
        losses = [update(logits, optimizer, batch, configs[seat], [seat], game.reward_scale)
                  for seat, (logits, optimizer) in enumerate(learners)]
        figures = [{**batch_figures(batch, [seat]), **losses[seat], **table_figures(learners[seat][0])}
                   for seat in (0, 1)]
        line = MetricsLine(iteration=iteration, values={
            **figures[0],
            **coplayer_figures(figures[1]),
            "perf/seconds": time.perf_counter() - start,
        })
        log.write(line)
        if on_iteration is not None:
            on_iteration(line)
    log.close()

    final = [logits.detach().tolist() for logits, _ in learners]  # 2 x (5,)
    save_pair(out_dir, final, config_a.game.name)
    return {
        "iterations": config_a.train.iterations,
        "seconds": time.perf_counter() - began,
        **pair_summary(final, game, config_a.eval_opponents, config_b.eval_opponents),
    }


def save_pair(out_dir: Path, logits: Sequence[Sequence[float]], game: str) -> None:
    """Write seat 0's (5,) cooperation logits to ``policy.json``, seat 1's to ``coplayer_policy.json``."""
    for name, table in zip((POLICY_FILE, COPLAYER_POLICY_FILE), logits, strict=True):
        write_policy(out_dir, TabularPolicyFile.from_logits(list(table), game), name)


def pair_summary(
    logits: Sequence[Sequence[float]], game: MatrixGame, eval_a: Sequence[str], eval_b: Sequence[str]
) -> dict[str, Any]:
    """Both final tables from their (2, 5) ``logits`` and their exact play (:func:`play_tables`).

    ``policy`` and ``coplayer_policy`` (P(cooperate) per state), ``play`` (seat
    0's view of the pair) and ``coplayer_play`` (seat 1's), and each table
    against the scripted opponents ``eval_a`` / ``eval_b`` (``eval``,
    ``coplayer_eval``), over the rounds of ``game``.
    """
    table_a, table_b = (torch.sigmoid(torch.tensor(table, dtype=torch.float64)).tolist() for table in logits)

    def play(table: Sequence[float], other: Sequence[float]) -> dict[str, float | None]:
        return play_tables(table, other, game.payoffs, game.max_rounds, game.continuation_prob)

    return {
        "policy": dict(zip(STATES, table_a, strict=True)),
        "coplayer_policy": dict(zip(STATES, table_b, strict=True)),
        "play": play(table_a, table_b),
        "coplayer_play": play(table_b, table_a),
        "eval": {name: play(table_a, scripted_table(name)) for name in eval_a},
        "coplayer_eval": {name: play(table_b, scripted_table(name)) for name in eval_b},
    }


def _check_pair(config_a: RunConfig, config_b: RunConfig) -> None:
    """B's baseline must fit A's batch (A is the main learner, B the second): its seed groups divide A's
    games, and share A's game lengths."""
    problem = baseline_problem(config_a, config_b)
    if problem is not None:
        raise ValueError(problem)
