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
from detente.config import CreditConfig, GameConfig, RunConfig, dump_config
from detente.credit import pair_credit
from detente.games import make_game
from detente.games.ipd import COOPERATE, DEFECT, MatrixGame, PayoffTable
from detente.policies.tabular import (
    FIRST,
    POLICY_FILE,
    STATES,
    TabularPolicy,
    joint_state,
    save_policy,
    scripted_table,
)
from detente.runs import CONFIG, METRICS, append_jsonl, write_atomic
from detente.train.loss import policy_loss

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
    config: RunConfig, out_dir: Path, on_iteration: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train a memory-1 table as ``config`` says; write ``out_dir``; return a summary.

    Writes ``config.yaml`` first, then one ``metrics.jsonl`` line per
    iteration (a previous file there is replaced): ``iteration``,
    ``reward_mean`` (unscaled reward per round of the learner's seats),
    ``cooperation_rate``, ``mutual_cooperation_rate``, ``retaliation_rate``
    (P(defect | other defected last round); None when that never happened),
    ``loss``, ``entropy``, ``grad_norm`` (before clipping), ``seconds`` (of
    this iteration) and ``coop_prob_<state>`` for the five states. Saves the
    final table to ``policy.json``. ``on_iteration`` gets each metrics record.
    The summary holds the final table and its exact play (:func:`play_tables`)
    against the co-player and every ``config.eval_opponents`` entry.

    Runs on one torch thread (:func:`one_thread`).
    """
    preflight(config)
    with one_thread():
        return _train(config, Path(out_dir), on_iteration)


def _train(
    config: RunConfig, out_dir: Path, on_iteration: Callable[[dict[str, Any]], None] | None
) -> dict[str, Any]:
    game = matrix_game(config.game)
    eval_tables = {name: scripted_table(name) for name in config.eval_opponents}
    coplayer = None if config.coplayer == SELF else torch.tensor(coplayer_table(config.coplayer))
    learner_seats = [0, 1] if coplayer is None else [0]
    B, T = config.train.games_per_iteration, game.max_rounds  # B games, T rounds at most
    R = payoff_tensor(game.payoffs)  # (2, 2, 2)
    generator = torch.Generator().manual_seed(config.seed)
    logits, optimizer = new_table(config)

    write_atomic(out_dir / CONFIG, dump_config(config))
    write_atomic(out_dir / METRICS, "")
    began = time.perf_counter()
    for iteration in range(config.train.iterations):
        start = time.perf_counter()
        with torch.no_grad():
            own = torch.sigmoid(logits)  # (5,)
            tables = torch.stack([own, own if coplayer is None else coplayer])  # (2, 5)
        lengths = round_lengths(B, T, game.continuation_prob, config.credit.baseline_group_size, generator)
        batch = rollout(tables, R, lengths, generator)
        losses = update(logits, optimizer, batch, config, learner_seats, game.reward_scale)
        record = {
            "iteration": iteration,
            **behaviour(batch, learner_seats),
            **losses,
            "seconds": time.perf_counter() - start,
            **{f"coop_prob_{s}": p for s, p in zip(STATES, torch.sigmoid(logits).tolist(), strict=True)},
        }
        append_jsonl(out_dir / METRICS, record)
        if on_iteration is not None:
            on_iteration(record)

    final = logits.detach().tolist()
    save_policy(out_dir / POLICY_FILE, final, config.game.name)
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
    """A learner's (5,) cooperation logits, all ``config.agent.init_logit``, and their Adam optimizer."""
    logits = torch.nn.Parameter(torch.full((len(STATES),), config.agent.init_logit))  # (5,)
    return logits, torch.optim.Adam([logits], lr=config.train.lr)


def coplayer_table(spec: str) -> tuple[float, ...]:
    """Cooperation probabilities (5,) of a fixed co-player: a scripted name, or ``run:DIR``.

    ``run:DIR`` is the final table of the tabular run in ``DIR`` (its ``policy.json``).
    """
    agent = parse_agent(spec)
    if agent.kind == "run":
        return TabularPolicy.load(agent.run_dir).cooperate_prob
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

    ``logits``: (5,) cooperation logits of the learner. Returns ``loss``,
    ``entropy`` (mean over the learner's decisions) and ``grad_norm`` (before clipping).
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
    return {"loss": loss.item(), "entropy": H[mask].mean().item(), "grad_norm": grad_norm.item()}


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


def behaviour(batch: Rollout, seats: Sequence[int]) -> dict[str, float | None]:
    """Empirical ``reward_mean`` (per round), cooperation, mutual cooperation and retaliation of ``seats``."""
    S, B, T = len(seats), *batch.mask.shape  # S learner seats, B games, T rounds
    played = batch.mask.expand(S, B, T)  # (S, B, T)
    own = batch.action[seats]  # (S, B, T)
    other = batch.action[[1 - s for s in seats]]  # (S, B, T)
    mutual = (batch.action == COOPERATE).all(dim=0)[batch.mask]  # (played rounds,)
    provoked = (other[..., :-1] == DEFECT) & played[..., 1:]  # (S, B, T-1)
    retaliated = provoked & (own[..., 1:] == DEFECT)  # (S, B, T-1)
    return {
        "reward_mean": batch.reward[seats][played].mean().item(),
        "cooperation_rate": (own[played] == COOPERATE).float().mean().item(),
        "mutual_cooperation_rate": mutual.float().mean().item(),
        "retaliation_rate": (retaliated.sum() / provoked.sum()).item() if provoked.any() else None,
    }


def play_tables(
    table: Sequence[float],
    other: Sequence[float],
    payoffs: PayoffTable,
    n_rounds: int,
    continuation_prob: float | None = None,
) -> dict[str, float | None]:
    """Exact expected play of memory-1 ``table`` (seat 0) against ``other`` (seat 1).

    The joint action of round t has distribution ``d_t`` (2, 2) with
    ``d_0[a, b] = pi(a | first) pi'(b | first)`` and
    ``d_t[a, b] = sum_{x, y} d_{t-1}[x, y] pi(a | xy) pi'(b | yx)``. Round t is
    played with probability ``w_t = 1`` (fixed length) or
    ``continuation_prob^t`` (random length, capped at ``n_rounds``). Returns
    the expected ``reward`` and ``other_reward`` per game, ``reward_per_round``
    and, as ``w``-weighted frequencies over decisions of seat 0,
    ``cooperation_rate``, ``mutual_cooperation_rate`` and ``retaliation_rate``
    (None if the other never defects).
    """
    pi = _action_probs(table)  # (5, 2): pi[s, a]
    pi_other = _action_probs(other)  # (5, 2)
    R = payoff_tensor(payoffs).double()  # (2, 2, 2)
    x, y = torch.meshgrid(torch.arange(2), torch.arange(2), indexing="ij")  # previous joint action
    step = pi[joint_state(x, y)][:, :, :, None] * pi_other[joint_state(y, x)][:, :, None, :]  # (2,2,2,2)
    p = 1.0 if continuation_prob is None else continuation_prob
    d = torch.outer(pi[FIRST], pi_other[FIRST])  # (2, 2)
    totals = dict.fromkeys(("rounds", "reward", "other_reward", "coop", "mutual", "provoked", "retaliated"),
                           0.0)
    retaliate = pi[joint_state(torch.arange(2), DEFECT), DEFECT]  # (2,) pi(D | xD)
    for t in range(n_rounds):
        w, w_next = p**t, (p ** (t + 1) if t + 1 < n_rounds else 0.0)
        totals["rounds"] += w
        totals["reward"] += w * (d * R[..., 0]).sum().item()
        totals["other_reward"] += w * (d * R[..., 1]).sum().item()
        totals["coop"] += w * d[COOPERATE].sum().item()
        totals["mutual"] += w * d[COOPERATE, COOPERATE].item()
        totals["provoked"] += w_next * d[:, DEFECT].sum().item()
        totals["retaliated"] += w_next * (d[:, DEFECT] * retaliate).sum().item()
        d = torch.einsum("xy,xyab->ab", d, step)
    rounds = totals["rounds"]
    return {
        "reward": totals["reward"],
        "other_reward": totals["other_reward"],
        "reward_per_round": totals["reward"] / rounds,
        "cooperation_rate": totals["coop"] / rounds,
        "mutual_cooperation_rate": totals["mutual"] / rounds,
        "retaliation_rate": totals["retaliated"] / totals["provoked"] if totals["provoked"] > 0 else None,
    }


def _action_probs(table: Sequence[float]) -> Tensor:
    """(5,) cooperation probabilities -> (5, 2) probabilities of (cooperate, defect)."""
    if len(table) != len(STATES):
        raise ValueError(f"a memory-1 table has {len(STATES)} probabilities, got {len(table)}")
    p = torch.tensor(table, dtype=torch.float64)
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"probabilities must be in [0, 1], got {list(table)}")
    return torch.stack([p, 1 - p], dim=1)


def matrix_game(config: GameConfig) -> MatrixGame:
    """The game ``config`` describes; ``ValueError`` unless it is an iterated 2x2 matrix game."""
    game = make_game(config.name, **config.params)
    if not isinstance(game, MatrixGame):
        raise ValueError(f"tabular learners play 2x2 matrix games, not {config.name!r}")
    return game
