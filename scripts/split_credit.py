"""Which way each credit rule pushes the claims in Split, by item kind, for a policy that ignores history.

Usage::

    python scripts/split_credit.py                     # claims uniform on 4..10 (mean 7), 4 rounds
    python scripts/split_credit.py --low 0 --high 10   # uniform on 0..10 (mean 5)
    python scripts/split_credit.py --greedy 0.5        # half of all proposals claim 10 of everything

Self-play batches shaped like the ``cpu_split_*`` presets: 8 games of ``--rounds`` rounds in seed
groups of 4 (the same item values), both seats' rows, leave-one-out within each (group, seat)
block, rewards divided by 100, gamma 0.9. Every claim is drawn independently, uniform on
``--low..--high``; with ``--greedy G`` a proposal claims 10 of every item with probability G
instead. The credit comes from :func:`detente.credit.pair_credit`, as the trainer computes it.

A policy gradient moves the mean claim of an item kind in the direction of the covariance between
the claim and the credit of its round, ``E[(c - E c) * C]``. The script prints it for the claims
on items the claimant values more than the other agent does (10 against 1), less (1 against 10)
and the same, and over all three: a policy that cannot yet tell the kinds apart moves by the last
column. Positive: towards larger claims.
"""

from __future__ import annotations

import argparse
import random

import torch

from detente.credit import pair_credit
from detente.games.base import other
from detente.games.split import ITEMS, N_EACH, SplitGame, draw_values, split_rewards

KINDS = ("more", "less", "equal")


def kind(own: int, theirs: int) -> str:
    return "more" if own > theirs else "less" if own < theirs else "equal"


def claim(rng: random.Random, args: argparse.Namespace, greedy: bool) -> int:
    return N_EACH if greedy else rng.randint(args.low, args.high)


def proposal(rng: random.Random, args: argparse.Namespace) -> tuple[int, ...]:
    greedy = rng.random() < args.greedy
    return tuple(claim(rng, args, greedy) for _ in ITEMS)


def covariances(algorithm: str, args: argparse.Namespace) -> dict[str, float]:
    """``E[(c - E c) * C]`` per item kind and over all claims, pooled over ``args.batches`` batches."""
    rng = random.Random(args.seed)
    groups, K = args.games // args.group, args.group
    claims: dict[str, list[float]] = {k: [] for k in (*KINDS, "all")}
    credits: dict[str, list[float]] = {k: [] for k in (*KINDS, "all")}
    for _ in range(args.batches):
        rows, r1, r2 = [], [], []
        for _group in range(groups):
            values = [draw_values(rng) for _ in range(args.rounds)]  # shared by the group's K games
            games = [[(proposal(rng, args), proposal(rng, args)) for _ in range(args.rounds)]
                     for _ in range(K)]
            for seat in (0, 1):  # one (group, seat) block of K rows
                for game in games:
                    rewards = [split_rewards(c, v) for c, v in zip(game, values, strict=True)]
                    rows.append((game, values, seat))
                    r1.append([r[seat] / SplitGame.reward_scale for r in rewards])
                    r2.append([r[other(seat)] / SplitGame.reward_scale for r in rewards])
        C = pair_credit(torch.tensor(r1), torch.tensor(r2), algorithm, gamma=args.gamma, beta=args.beta,
                        group_size=K)
        for b, (game, values, seat) in enumerate(rows):
            for t, (joint, (va, vb)) in enumerate(zip(game, values, strict=True)):
                own_v, their_v = (va, vb) if seat == 0 else (vb, va)
                for item in range(len(ITEMS)):
                    k = kind(own_v[item], their_v[item])
                    for key in (k, "all"):
                        claims[key].append(joint[seat][item])
                        credits[key].append(float(C[b, t]))
    out = {}
    for key in claims:
        c, credit = torch.tensor(claims[key], dtype=torch.float64), torch.tensor(credits[key])
        out[key] = float(((c - c.mean()) * credit).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--games", type=int, default=8, help="games per batch (both seats are rows)")
    parser.add_argument("--group", type=int, default=4, help="games per seed group")
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--low", type=int, default=4)
    parser.add_argument("--high", type=int, default=10)
    parser.add_argument("--greedy", type=float, default=0.0, help="share of proposals claiming 10 of all")
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--beta", type=float, default=1.0, help="Advantage Alignment's beta")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"E[(claim - mean) * credit]; claims uniform on {args.low}..{args.high}, "
          f"greedy share {args.greedy}; "
          f"{args.rounds} rounds, {args.games} games in groups of {args.group} x {args.batches} batches, "
          f"gamma {args.gamma}, beta {args.beta}")
    print(f"{'rule':>12}" + "".join(f"{'valued ' + k:>15}" for k in KINDS) + f"{'all claims':>15}")
    for algorithm in ("naive", "sum_rewards", "adalign"):
        cov = covariances(algorithm, args)
        print(f"{algorithm:>12}" + "".join(f"{cov[k]:>+15.4f}" for k in (*KINDS, "all")))


if __name__ == "__main__":
    main()
