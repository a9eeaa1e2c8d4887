"""An IPD agent's move probabilities by context: P(A) in round 1 and after each joint move.

Usage::

    python scripts/start_policy.py                          # untrained SmolLM2, 6 rounds
    python scripts/start_policy.py run:runs/cpu_ipd_contrast/adalign --games 64
    python scripts/start_policy.py model:smollm2 --system "You are a friendly agent."
    python scripts/start_policy.py --recap                  # the game's recap of both moves

The agent (any name ``detente play`` takes) plays ``--games`` games against ``random:0.5``, which
visits every context, and the script counts its moves: P(A) on the first move and after each
previous-round joint move (own, the other's), with the number of decisions behind each figure.
Its five figures are what ``scripts/credit_by_round.py --memory1`` takes, to say where each
credit rule pushes a policy that starts there.
"""

from __future__ import annotations

import argparse
from collections import Counter

from detente.agents import make_agent
from detente.games import make_game
from detente.games.ipd import COOPERATE
from detente.policies.llm import LLMPolicy
from detente.policies.tabular import FIRST, STATE_LABELS, STATES, joint_state
from detente.rollout.play import play


def context_counts(agent_name: str, games: int, rounds: int, system: str | None,
                   recap: bool = False) -> tuple[Counter, Counter]:
    """(decisions, cooperations) per state index, the agent in seat 0 against random:0.5."""
    boards = [make_game("ipd", n_rounds=rounds, recap=recap) for _ in range(games)]
    agent = make_agent(agent_name, boards[0])
    if system is not None:
        if not isinstance(agent, LLMPolicy):
            raise SystemExit(f"--system needs a language-model agent, not {agent_name!r}")
        agent.system_prompt = system  # read when each game's chat opens; the agent's other settings stay
    opponent = make_agent("random:0.5", boards[0])
    play(boards, [(agent, opponent)] * games, seeds=list(range(games)))
    seen, cooperated = Counter(), Counter()
    for board in boards:
        view = board.view(0)
        for t, move in enumerate(view.own):
            state = joint_state(view.own[t - 1], view.other[t - 1]) if t else FIRST
            seen[state] += 1
            cooperated[state] += move == COOPERATE
    return seen, cooperated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent", nargs="?", default="model:smollm2")
    parser.add_argument("--games", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--system", default=None, help="a system turn for a language-model agent")
    parser.add_argument("--recap", action="store_true", help="the game's recap: both moves each round")
    args = parser.parse_args()
    seen, cooperated = context_counts(args.agent, args.games, args.rounds, args.system, args.recap)
    probabilities = [cooperated[s] / seen[s] if seen[s] else float("nan") for s in range(len(STATES))]
    print(f"{args.agent}: P(A) by context over {args.games} games of {args.rounds} rounds against random:0.5"
          + (f", system turn {args.system!r}" if args.system else "") + (", recap" if args.recap else ""))
    print("".join(f"{name:>12}" for name in STATE_LABELS))
    print("".join(f"{p:>7.2f} ({seen[s]:>3})" for s, p in enumerate(probabilities)))
    print("--memory1 " + ",".join(f"{p:.2f}" for p in probabilities))


if __name__ == "__main__":
    main()
