"""Exact LOLA on memory-1 tables: a reference opponent-shaping learner for the 2x2 matrix games.

Learning with Opponent-Learning Awareness (Foerster, Chen, Al-Shedivat,
Whiteson, Abbeel, Mordatch; AAMAS 2018, arXiv 1709.04326), its exact-value
case (LOLA-Ex and NL-Ex in the paper). Two memory-1 tables of cooperation
logits ``theta_1`` (seat 0) and ``theta_2`` (seat 1), five each in the order of
:data:`detente.policies.tabular.STATES`, play an iterated game whose expected
discounted returns ``V_1``, ``V_2`` are computed in closed form
(:func:`exact_values`) and differentiated with torch autograd. Per iteration
both learners step at once, from the same ``(theta_1, theta_2)``::

    naive (NL-Ex):  theta_1 += delta * grad_1 V_1
    LOLA (LOLA-Ex): theta_1 += delta * grad_1 V_1 + delta * eta * (grad_2 V_1)^T (grad_1 grad_2 V_2)

and symmetrically for seat 1 (swap 1 and 2). The LOLA term is the
first-order Taylor form of the paper: the learner differentiates its return
after the co-player's anticipated naive step ``eta * grad_2 V_2`` through that
step only (the paper drops the ``(grad_1 grad_2 V_1) grad_2 V_2`` term).

The paper's hyperparameters, as its public code sets them for the exact
case, are the defaults here: gamma 0.96, delta (lr) 1, eta 1, plain gradient
ascent (no optimizer state), 200 updates, initial logits drawn from N(0, 1),
one draw per seed. The paper's IPD pays -1/-3/0/-2 (R/S/T/P); ``game`` defaults to the
SPEC's IPD (3/0/5/1) and takes the paper's table as
``{name: matrix, params: {payoffs: [[[-1, -1], [-3, 0]], [[0, -3], [-2, -2]]]}}``.
Expected (paper): LOLA self-play finds tit-for-tat and cooperates, naive
learners defect, and LOLA gets more than a naive co-learner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor

from detente.config import GameConfig, Strict
from detente.policies.tabular import FIRST, STATES, joint_state
from detente.runs import MetricsLine, coplayer_figures, write_config, write_metrics, write_run_info
from detente.train.metrics import MetricsLog
from detente.train.tabular import matrix_game, one_thread, payoff_tensor, table_figures
from detente.train.tabular_pair import pair_summary, save_pair

Rule = Literal["lola", "naive"]


class LolaConfig(Strict):
    """One exact two-learner run; defaults are the LOLA paper's IPD settings."""

    seed: int = Field(0, description="Seeds the N(0, 1) initial logits of both tables (paper code).")
    game: GameConfig = Field(default_factory=GameConfig, description="A 2x2 matrix game: its payoffs "
                             "define V; its rounds are used only by the final exact play.")
    learner: Rule = Field("lola", description="Update rule of seat 0: lola or naive.")
    coplayer: Rule = Field("lola", description="Update rule of seat 1: lola or naive.")
    gamma: float = Field(0.96, ge=0.0, lt=1.0, description="Discount of the infinite-horizon value "
                         "(paper: 0.96 IPD).")
    lr: float = Field(1.0, gt=0.0, description="delta, gradient-ascent step on the logits (paper: 1).")
    eta: float = Field(1.0, ge=0.0, description="LOLA's look-ahead step on the co-player (paper code: 1).")
    iterations: int = Field(200, ge=1, description="Simultaneous updates (paper code: 200).")
    eval_opponents: list[str] = Field(default_factory=lambda: ["alld", "allc", "tft"],
                                      description="Scripted opponents each final table plays exactly.")


def train_lola(
    config: LolaConfig, out_dir: Path, on_iteration: Callable[[MetricsLine], None] | None = None
) -> dict[str, Any]:
    """Train two exact learners as ``config`` says; write ``out_dir``; return a summary.

    Writes ``run.json`` and ``config.yaml`` (this config) first, then one ``metrics.jsonl``
    line per iteration: ``reward/learner`` and ``reward/coplayer`` (``(1 - gamma) V``, the
    discounted mean reward per round, at the logits the step starts from),
    ``policy/coop_prob_<state>`` (after the step), ``loss/grad_norm`` (norm of the update
    direction before ``lr``), the latter two also under ``coplayer/`` for seat 1, and
    ``perf/seconds``. Saves the final tables to
    ``policy.json`` (seat 0) and ``coplayer_policy.json`` (seat 1). The summary
    is :func:`detente.train.tabular_pair.pair_summary` (exact play over the
    game's rounds) plus ``values``, the final ``(1 - gamma) V`` of both seats.
    """
    with one_thread():
        return _train(config, Path(out_dir), on_iteration)


def _train(
    config: LolaConfig, out_dir: Path, on_iteration: Callable[[MetricsLine], None] | None
) -> dict[str, Any]:
    game = matrix_game(config.game)
    R = payoff_tensor(game.payoffs).double()  # (2, 2, 2)
    generator = torch.Generator().manual_seed(config.seed)
    thetas = [torch.randn(len(STATES), generator=generator, dtype=torch.float64).requires_grad_()
              for _ in range(2)]  # theta_1, theta_2: (5,) each

    write_run_info(out_dir, "lola", game)
    write_config(out_dir, config)
    write_metrics(out_dir, [])
    log = MetricsLog(out_dir)
    began = time.perf_counter()
    for iteration in range(config.iterations):
        start = time.perf_counter()
        # ALGO LOGIC: both update directions from the same (theta_1, theta_2), then both steps
        V = exact_values(thetas[0], thetas[1], R, config.gamma)  # (2,)
        directions = update_directions(thetas, V, (config.learner, config.coplayer), config.eta)
        with torch.no_grad():
            for theta, direction in zip(thetas, directions, strict=True):
                theta += config.lr * direction
        figures = [_figures(theta, direction) for theta, direction in zip(thetas, directions, strict=True)]
        line = MetricsLine(iteration=iteration, values={
            "reward/learner": (1 - config.gamma) * V[0].item(),
            "reward/coplayer": (1 - config.gamma) * V[1].item(),
            **figures[0],
            **coplayer_figures(figures[1]),
            "perf/seconds": time.perf_counter() - start,
        })
        log.write(line)
        if on_iteration is not None:
            on_iteration(line)
    log.close()

    final = [theta.detach().tolist() for theta in thetas]  # 2 x (5,)
    save_pair(out_dir, final, config.game.name)
    with torch.no_grad():
        values = (1 - config.gamma) * exact_values(thetas[0], thetas[1], R, config.gamma)  # (2,)
    return {
        "iterations": config.iterations,
        "seconds": time.perf_counter() - began,
        "values": values.tolist(),
        **pair_summary(final, game, config.eval_opponents, config.eval_opponents),
    }


def exact_values(theta_1: Tensor, theta_2: Tensor, R: Tensor, gamma: float) -> Tensor:
    """(2,) expected discounted returns ``V_1, V_2`` of seats 0 and 1 over the infinite game.

    ``theta_1``, ``theta_2``: (5,) cooperation logits; ``R``: (2, 2, 2) payoffs
    ``R[a1, a2, seat]``. The chain's states are the four joint actions
    ``j = 2 a1 + a2`` (CC, CD, DC, DD, seat 0's move first)::

        p0[j]   = pi_1(a1 | first) pi_2(a2 | first)                      (4,)
        P[i, j] = pi_1(a1 | s_1(i)) pi_2(a2 | s_2(i))                    (4, 4)
        V_k     = sum_t gamma^t p0^T P^t r_k = p0^T (I - gamma P)^-1 r_k

    with ``s_1(i)`` the state of joint action i seen from seat 0 and ``s_2(i)``
    from seat 1 (own move first), ``r_k[j]`` seat k's reward of joint action j.
    This is the paper's closed form (and :func:`detente.train.tabular.play_tables`'
    recursion summed to infinity): the reference learner reproduces the
    published setting, gamma 0.96 and no last round, rather than our 10-round
    game (the paper studies infinitely iterated games).
    """
    x, y = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])  # (4,) seat 0's and seat 1's last move
    c1 = torch.sigmoid(theta_1)  # (5,) P(cooperate | state) of seat 0
    c2 = torch.sigmoid(theta_2)  # (5,)
    pi_1 = torch.stack([c1, 1 - c1], dim=-1)  # (5, 2): pi_1[s, a]
    pi_2 = torch.stack([c2, 1 - c2], dim=-1)  # (5, 2)
    p0 = torch.outer(pi_1[FIRST], pi_2[FIRST]).reshape(4)  # (4,)
    P = (pi_1[joint_state(x, y)][:, :, None] * pi_2[joint_state(y, x)][:, None, :]).reshape(4, 4)  # (4, 4)
    r = R.reshape(4, 2)  # (4, 2): r[j, k]
    # p0^T (I - gamma P)^-1 as the solution d of (I - gamma P)^T d = p0: discounted visits of each state
    occupancy = torch.linalg.solve((torch.eye(4, dtype=P.dtype) - gamma * P).T, p0)  # (4,)
    return occupancy @ r  # (2,)


def update_directions(thetas: Sequence[Tensor], V: Tensor, rules: Sequence[Rule], eta: float) -> list[Tensor]:
    """Each seat's ascent direction (5,), detached: ``grad_k V_k`` plus, for LOLA, the shaping term.

    ``thetas``: (theta_1, theta_2), (5,) each with ``requires_grad``; ``V``:
    (2,) :func:`exact_values` of them. For seat k with co-player o the LOLA term is
    ``eta * (grad_o V_k)^T (grad_k grad_o V_o) = eta * grad_k [ stopgrad(grad_o V_k) . grad_o V_o ]``.
    """
    grads = [torch.autograd.grad(V[k], thetas, create_graph=True) for k in (0, 1)]  # grads[k][j] = grad_j V_k
    directions = []
    for k, rule in enumerate(rules):
        o = 1 - k
        direction = grads[k][k]  # (5,)
        if rule == "lola":
            shaping = torch.autograd.grad(grads[k][o].detach() @ grads[o][o], thetas[k], retain_graph=True)[0]
            direction = direction + eta * shaping  # (5,)
        directions.append(direction.detach())
    return directions


def _figures(theta: Tensor, direction: Tensor) -> dict[str, float]:
    """One learner's table (after its step) and the norm of its update direction."""
    return {**table_figures(theta), "loss/grad_norm": direction.norm().item()}
