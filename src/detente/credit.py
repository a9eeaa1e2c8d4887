"""Credit assignment: the learning formulas of SPEC section 3 on ``(B, T)`` tensors.

Pure torch, no game knowledge. Row ``b`` of every tensor is one game seen from
one agent, column ``t`` one round (a round is one timestep). Shapes::

    B  games in the batch (rows)
    T  rounds (columns); shorter games are padded and carry ``mask = 0``
    K  games per seed group (consecutive rows that share environment randomness)

Pipeline: rewards ``r`` (already divided by the game's constant c) ->
:func:`discounted_returns` ``G`` -> :func:`leave_one_out_baseline` ``A`` ->
credit ``C`` (:func:`naive_credit`, :func:`sum_rewards_credit` or
:func:`advantage_alignment_credit`; :func:`credit` picks one by name;
:func:`pair_credit` runs the whole pipeline for a learner and its co-player).

Sources: Duque et al., "Advantage Alignment Algorithms", ICLR 2025,
arXiv 2406.14662; Piche et al., "Learning Robust Social Strategies with Large
Language Models", arXiv 2511.19405 (2025).
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import torch
from torch import Tensor

Algorithm: TypeAlias = Literal["naive", "sum_rewards", "adalign"]
ALGORITHMS: tuple[Algorithm, ...] = ("naive", "sum_rewards", "adalign")


def discounted_returns(r: Tensor, gamma: float, mask: Tensor | None = None) -> Tensor:
    """Return-to-go of every row: ``G_t = sum_{l>=t} gamma^(l-t) r_l``.

    ``r``: (B, T) rewards. ``mask``: optional (B, T), 1 on played rounds and 0
    on padding; padded rewards count as 0. Returns ``G``: (B, T), 0 on padding.
    """
    _check_2d("r", r)
    _check_gamma(gamma)
    r = _masked(r, mask)
    B, T = r.shape  # B games, T rounds
    G = torch.zeros_like(r)
    running = torch.zeros(B, dtype=r.dtype, device=r.device)
    for t in reversed(range(T)):
        running = r[:, t] + gamma * running
        G[:, t] = running
    return G


def leave_one_out_baseline(G: Tensor, group_size: int | None = None, mask: Tensor | None = None,
                           episode: Tensor | None = None) -> Tensor:
    """Advantage against the other games of the group: ``A^i_t = G^i_t - mean_{j != i} G^j_t``.

    Groups are consecutive blocks of ``group_size`` (K) rows that share the
    same environment seed; ``None`` makes the whole batch one group (SPEC 3:
    IPD has no environment randomness). With a ``mask``, the mean runs over
    the other games still playing at ``t`` (baseline 0 when there is none) and
    ``A`` is 0 on padding.

    ``episode``: optional (B,) integer label of the game each row comes from, for
    batches that hold both seats of a game. Rows of one game stay out of each
    other's baseline (``j`` runs over the other *games*): the other seat's return
    depends on this row's actions, so counting it would bias the gradient (a
    defection lowers the other's return, hence one's own baseline). None: every
    row its own game.

    ``G``: (B, T) returns. Returns ``A``: (B, T).
    """
    _check_2d("G", G)
    B, T = G.shape  # B games, T rounds
    K = B if group_size is None else group_size  # K games per group
    if K < 2:
        raise ValueError(f"leave-one-out needs at least 2 games per group, got group size {K}")
    if B % K:
        raise ValueError(f"batch of {B} games is not divisible by group size {K}")
    m = torch.ones_like(G) if mask is None else _check_mask(mask, G).to(G.dtype)
    G = G * m
    own_sum, own_count = G, m  # (B, T): the row's own game, left out of its baseline
    if episode is not None:
        own_sum, own_count = _episode_sums(G, m, episode, K)
    G_groups = G.reshape(B // K, K, T)  # (B/K, K, T)
    m_groups = m.reshape(B // K, K, T)  # (B/K, K, T)
    others_sum = G_groups.sum(dim=1, keepdim=True) - own_sum.reshape(B // K, K, T)  # (B/K, K, T)
    others_count = m_groups.sum(dim=1, keepdim=True) - own_count.reshape(B // K, K, T)  # (B/K, K, T)
    baseline = others_sum / others_count.clamp(min=1)  # (B/K, K, T)
    return ((G_groups - baseline) * m_groups).reshape(B, T)


def _episode_sums(G: Tensor, m: Tensor, episode: Tensor, K: int) -> tuple[Tensor, Tensor]:
    """(B, T) sums of ``G`` and of ``m`` over the rows of each row's game in its group (itself included)."""
    B = G.shape[0]
    if episode.shape != (B,):
        raise ValueError(f"episode must be a ({B},) tensor of game labels, got shape {tuple(episode.shape)}")
    group = torch.arange(B, device=episode.device) // K  # (B,)
    _, index = torch.unique(torch.stack([group, episode]), dim=1, return_inverse=True)  # (B,): 0..E-1
    E = int(index.max()) + 1  # distinct (group, game) pairs
    sums = G.new_zeros(E, G.shape[1]).index_add_(0, index, G)  # (E, T)
    counts = m.new_zeros(E, m.shape[1]).index_add_(0, index, m)  # (E, T)
    return sums[index], counts[index]


def advantages(
    r: Tensor, gamma: float, group_size: int | None = None, mask: Tensor | None = None,
    episode: Tensor | None = None,
) -> Tensor:
    """``A = leave_one_out_baseline(discounted_returns(r, gamma))``: (B, T) rewards to (B, T) advantages."""
    return leave_one_out_baseline(discounted_returns(r, gamma, mask), group_size, mask, episode)


def naive_credit(A1: Tensor) -> Tensor:
    """Naive RL: ``C_t = A^1_t``, the learner's own advantage. (B, T) -> (B, T)."""
    _check_2d("A1", A1)
    return A1


def sum_rewards_credit(A1: Tensor, A2: Tensor) -> Tensor:
    """Cooperative baseline: ``C_t = A^1_t + A^2_t``. (B, T), (B, T) -> (B, T)."""
    _check_pair(A1, A2)
    return A1 + A2


def advantage_alignment_credit(A1: Tensor, A2: Tensor, gamma: float, beta: float) -> Tensor:
    """Advantage Alignment: ``C_t = A^1_t + beta * gamma * (sum_{k<t} gamma^(t-k) A^1_k) * A^2_t``.

    ``A1``: (B, T) the learner's advantages, ``A2``: (B, T) the co-player's,
    computed the same way from its own rewards. The discounted sum of the
    learner's past advantages follows ``past_0 = 0``,
    ``past_t = gamma * (past_{t-1} + A^1_{t-1})``. Padding needs no mask:
    advantages are 0 there, so the credit is too. Returns ``C``: (B, T).
    """
    _check_pair(A1, A2)
    _check_gamma(gamma)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    T = A1.shape[1]  # T rounds
    past = torch.zeros_like(A1)  # (B, T): sum_{k<t} gamma^(t-k) A^1_k
    for t in range(1, T):
        past[:, t] = gamma * (past[:, t - 1] + A1[:, t - 1])
    return A1 + beta * gamma * past * A2


def credit(
    algorithm: Algorithm, A1: Tensor, A2: Tensor | None = None, *, gamma: float, beta: float
) -> Tensor:
    """The credit ``C`` (B, T) of ``algorithm`` (SPEC 3); ``A2`` is needed by all but ``naive``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown credit algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    if algorithm == "naive":
        return naive_credit(A1)
    if A2 is None:
        raise ValueError(f"credit algorithm {algorithm!r} needs the co-player's advantages A2")
    if algorithm == "sum_rewards":
        return sum_rewards_credit(A1, A2)
    return advantage_alignment_credit(A1, A2, gamma, beta)


def pair_credit(
    r1: Tensor,
    r2: Tensor,
    algorithm: Algorithm,
    *,
    gamma: float,
    beta: float,
    group_size: int | None = None,
    mask: Tensor | None = None,
    episode: Tensor | None = None,
) -> Tensor:
    """Credit ``C`` (B, T) of agent 1 from both agents' scaled rewards ``r1``, ``r2`` (B, T).

    ``A^1 = advantages(r1)`` and ``A^2 = advantages(r2)``, each agent's own rewards through the
    same leave-one-out blocks of ``group_size`` rows (None: the whole batch; ``episode`` labels
    rows of one game, see :func:`leave_one_out_baseline`), then ``C = credit(algorithm, A^1, A^2)``.
    Row b of ``r2`` is the co-player of row b of ``r1``.
    """
    A1 = advantages(r1, gamma, group_size, mask, episode)
    A2 = advantages(r2, gamma, group_size, mask, episode)
    return credit(algorithm, A1, A2, gamma=gamma, beta=beta)


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * _check_mask(mask, x).to(x.dtype)


def _check_2d(name: str, x: Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name} must be a (B, T) tensor, got shape {tuple(x.shape)}")


def _check_pair(A1: Tensor, A2: Tensor) -> None:
    _check_2d("A1", A1)
    if A1.shape != A2.shape:
        raise ValueError(f"A1 and A2 must have the same (B, T) shape, got {tuple(A1.shape)} "
                         f"and {tuple(A2.shape)}")


def _check_mask(mask: Tensor, like: Tensor) -> Tensor:
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from data shape {tuple(like.shape)}")
    return mask


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
