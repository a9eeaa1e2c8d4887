"""Where Advantage Alignment's credit favours cooperating after mutual cooperation, round by round.

Usage::

    python scripts/credit_by_round.py                 # 6 rounds, gamma 0.9, beta 0 and 7
    python scripts/credit_by_round.py --noise 0.1 --betas 0.5,7
    python scripts/credit_by_round.py --cooperate 0.5       # history-blind play, every decision

Noisy tit-for-tat plays self-play batches shaped like the main job's (8 games of the 6-round IPD,
both seats' rows in one leave-one-out batch, where the two seats of a game stay out of each
other's baseline): it opens with A (cooperate) with probability 0.9,
then copies the other's last move but plays the other action with probability ``--noise``. The
credit of every decision comes from :func:`detente.credit.advantage_alignment_credit` on rewards
divided by the IPD's reward scale (5), exactly as the trainer computes it. For each round t >= 2
the script prints the mean credit of the decisions that defected after mutual cooperation in
round t-1, minus that of those that cooperated: positive means the update pushes towards
defecting there.

With ``--cooperate P`` both players instead ignore the history and play A with probability P in
every round, as an untrained language model nearly does, and the script prints, per round, the
mean credit of every D minus that of every C, whatever came before, and their mean over rounds.
A policy that cannot yet tell contexts apart moves by that pooled figure.

With ``--memory1 OPEN,AA,AB,BA,BB`` both players play a memory-1 policy: A with the first
probability in round 1, then with the probability of the previous round's context (own move, the
other's move). The script prints, per context and pooled over rounds (the IPD prompt names no
round), the mean credit of D minus that of C there. ``scripts/start_policy.py`` measures those
five probabilities for an untrained model.
"""

from __future__ import annotations

import argparse
import random

import torch

from detente.credit import advantage_alignment_credit, advantages
from detente.games.ipd import PRESETS, MatrixGame
from detente.policies.tabular import FIRST, STATE_LABELS, joint_state

PAYOFFS = PRESETS["prisoners_dilemma"]
"""PAYOFFS[own move][other's move] = (own reward, other's reward); 0 = A (cooperate), 1 = B (defect)."""


def noisy_tft_game(rng: random.Random, rounds: int, noise: float) -> list[tuple[int, int]]:
    moves: list[tuple[int, int]] = []
    for t in range(rounds):
        if t == 0:
            moves.append(tuple(int(rng.random() >= 0.9) for _ in (0, 1)))
        else:
            last = moves[-1]
            moves.append(tuple(last[1 - seat] ^ int(rng.random() < noise) for seat in (0, 1)))
    return moves


def history_blind_game(rng: random.Random, rounds: int, cooperate: float) -> list[tuple[int, int]]:
    return [tuple(int(rng.random() >= cooperate) for _ in (0, 1)) for _ in range(rounds)]


def context(moves: list[tuple[int, int]], t: int, seat: int) -> int:
    """The table state (index into :data:`STATE_LABELS`) of ``seat``'s decision in round ``t``."""
    return joint_state(*own_view(moves[t - 1], seat)) if t else FIRST


def memory1_game(rng: random.Random, rounds: int, cooperate: list[float]) -> list[tuple[int, int]]:
    moves: list[tuple[int, int]] = []
    for t in range(rounds):
        moves.append(tuple(int(rng.random() >= cooperate[context(moves, t, seat)]) for seat in (0, 1)))
    return moves


def own_view(joint: tuple[int, int], seat: int) -> tuple[int, int]:
    """(seat 0's move, seat 1's move) -> (this seat's move, the other's)."""
    return joint if seat == 0 else (joint[1], joint[0])


def defect_minus_cooperate(beta: float, args: argparse.Namespace) -> list[float]:
    """Per round: mean credit of D minus mean credit of C, after CC (rounds 2..T) or, with
    ``--cooperate``, over every decision (rounds 1..T)."""
    rng = random.Random(args.seed)
    blind = args.cooperate is not None
    first = 0 if blind else 1
    sums = {t: {0: [0.0, 0], 1: [0.0, 0]} for t in range(first, args.rounds)}
    for _ in range(args.batches):
        games = [history_blind_game(rng, args.rounds, args.cooperate) if blind
                 else noisy_tft_game(rng, args.rounds, args.noise) for _ in range(args.games)]
        rows, C = batch_credit(games, beta, args.gamma)
        for b, (moves, seat) in enumerate(rows):
            for t in range(first, args.rounds):
                if blind or moves[t - 1] == (0, 0):
                    cell = sums[t][moves[t][seat]]
                    cell[0] += C[b, t].item()
                    cell[1] += 1
    return [sums[t][1][0] / max(1, sums[t][1][1]) - sums[t][0][0] / max(1, sums[t][0][1])
            for t in range(first, args.rounds)]


def scaled_rewards(joint: tuple[int, int], seat: int) -> tuple[float, float]:
    """(own reward, other's reward) of one round from ``seat``'s side, divided by the game's scale."""
    own, theirs = own_view(joint, seat)
    return tuple(r / MatrixGame.reward_scale for r in PAYOFFS[own][theirs])


def batch_credit(games: list[list[tuple[int, int]]], beta: float, gamma: float) -> tuple[list, torch.Tensor]:
    """Both seats of every game as rows of one leave-one-out batch, rewards divided by the game's
    ``reward_scale`` as the trainer divides them: the rows ``(moves, seat)`` and their (B, T)
    Advantage Alignment credit."""
    rows = [(moves, seat) for moves in games for seat in (0, 1)]
    r1 = torch.tensor([[scaled_rewards(m, seat)[0] for m in moves] for moves, seat in rows])
    r2 = torch.tensor([[scaled_rewards(m, seat)[1] for m in moves] for moves, seat in rows])
    episode = torch.tensor([game for game in range(len(games)) for _ in (0, 1)])  # rows of one game
    A1, A2 = advantages(r1, gamma, episode=episode), advantages(r2, gamma, episode=episode)
    return rows, advantage_alignment_credit(A1, A2, gamma, beta)


def push_by_context(beta: float, args: argparse.Namespace) -> dict[str, float]:
    """Per context, pooled over rounds: mean credit of D minus mean credit of C, memory-1 play."""
    rng = random.Random(args.seed)
    sums = [{0: [0.0, 0], 1: [0.0, 0]} for _ in STATE_LABELS]
    for _ in range(args.batches):
        games = [memory1_game(rng, args.rounds, args.memory1) for _ in range(args.games)]
        rows, C = batch_credit(games, beta, args.gamma)
        for b, (moves, seat) in enumerate(rows):
            for t in range(args.rounds):
                cell = sums[context(moves, t, seat)][moves[t][seat]]
                cell[0] += C[b, t].item()
                cell[1] += 1
    return {name: cell[1][0] / max(1, cell[1][1]) - cell[0][0] / max(1, cell[0][1])
            for name, cell in zip(STATE_LABELS, sums, strict=True)}


def probabilities(text: str) -> list[float]:
    values = [float(v) for v in text.split(",")]
    if len(values) != len(STATE_LABELS) or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"need {len(STATE_LABELS)} probabilities in [0, 1] "
                                         f"({','.join(STATE_LABELS)}), got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--games", type=int, default=8, help="games per batch (both seats are rows)")
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--betas", default="0,7", help="comma-separated (0 = naive credit)")
    parser.add_argument("--cooperate", type=float, default=None, metavar="P",
                        help="history-blind play, A with probability P; every decision counted")
    parser.add_argument("--memory1", type=probabilities, default=None, metavar="OPEN,AA,AB,BA,BB",
                        help="memory-1 play: P(A) in round 1 and after each joint move; per context")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.memory1 is not None:
        print(f"credit of D minus credit of C per context, pooled over rounds; {args.rounds} rounds, "
              f"{args.games} games x {args.batches} batches, memory-1 play P(A) "
              + " ".join(f"{c} {p:g}" for c, p in zip(STATE_LABELS, args.memory1, strict=True))
              + f", gamma {args.gamma}")
        print(f"{'beta':>6}" + "".join(f"{c:>9}" for c in STATE_LABELS))
        for beta in (float(b) for b in args.betas.split(",")):
            push = push_by_context(beta, args)
            print(f"{beta:>6g}" + "".join(f"{push[c]:>+9.3f}" for c in STATE_LABELS))
        return
    blind = args.cooperate is not None
    play = f"history-blind play, A with p={args.cooperate}" if blind else f"noisy tft, noise {args.noise}"
    print(f"credit of D minus credit of C {'over every decision' if blind else 'after mutual cooperation'}; "
          f"{args.rounds} rounds, {args.games} games x {args.batches} batches, {play}, gamma {args.gamma}")
    rounds = range(0 if blind else 1, args.rounds)
    header = "".join(f"{'round ' + str(t + 1):>10}" for t in rounds)
    print(f"{'beta':>6}{header}" + ("      mean" if blind else ""))
    for beta in (float(b) for b in args.betas.split(",")):
        diffs = defect_minus_cooperate(beta, args)
        mean = f"{sum(diffs) / len(diffs):>+10.3f}" if blind else ""
        print(f"{beta:>6g}" + "".join(f"{d:>+10.3f}" for d in diffs) + mean)


if __name__ == "__main__":
    main()
