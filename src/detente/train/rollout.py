"""The rollout of one training iteration: where its games are played, and what comes back.

The trainer plans the games (:func:`detente.train.seating.plan`) and hands them
to a rollout backend, which plays them and returns a :class:`RolloutResult`:
the finished episodes, the learner's chat of every seat it held (records,
token ids, sampler log-probabilities; a learner co-player's too), the
transcripts to keep and the learner's counters. :class:`LocalRollout` plays everything in this process; a
backend that plays on other workers returns the same result, so credit, loss
and metrics do not know where the games ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from detente.games.base import Game, Seat
from detente.policies.llm import Chat, LLMPolicy
from detente.rollout.play import Episode, play, transcript
from detente.runs import TranscriptLine
from detente.train.seating import Seating


@dataclass
class RolloutResult:
    """What an iteration's games gave: one entry per game slot, in plan order."""

    episodes: list[Episode]
    learner_chats: dict[tuple[int, Seat], Chat]
    """``(slot, seat)`` -> the trained policy's chat there, for every seat the learner (or a learner
    co-player) held."""
    transcripts: list[TranscriptLine] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    """The learner's counters over this rollout (template_resets, truncated, wrapped, ...)."""
    coplayer_stats: Counter[str] = field(default_factory=Counter)
    """A learner co-player's counters over this rollout (empty without one)."""
    perf: dict[str, float] = field(default_factory=dict)
    """Run-shape facts of the backend (``perf/workers``, ...): logged under ``perf/`` only, as they may
    differ between runs that are otherwise identical."""


class RolloutBackend(Protocol):
    def run(self, seatings: Sequence[Seating], streams: Sequence[str], new_game: Callable[[], Game],
            keep_transcripts: int, iteration: int) -> RolloutResult:
        """Play ``seatings``: game i with seed ``seatings[i].seed`` and sampling stream ``streams[i]``;
        keep the first ``keep_transcripts`` games as transcripts of training ``iteration``."""

    def close(self) -> None:
        """Release what the backend holds (workers); a later :meth:`run` starts them again."""


class LocalRollout:
    """Plays the iteration's games in this process, all at once (every game of a batch advances together).
    ``coplayer`` is a learner co-player whose chats come back too."""

    def __init__(self, learner: LLMPolicy, coplayer: LLMPolicy | None = None) -> None:
        self.learner = learner
        self.trained = [learner] if coplayer is None else [learner, coplayer]

    def run(self, seatings: Sequence[Seating], streams: Sequence[str], new_game: Callable[[], Game],
            keep_transcripts: int, iteration: int) -> RolloutResult:
        before = [Counter(policy.stats) for policy in self.trained]
        games = [new_game() for _ in seatings]
        episodes = play(games, [s.players for s in seatings], [s.seed for s in seatings], streams=streams)
        chats = {(slot, seat): player.chats[slot][seat]
                 for slot, s in enumerate(seatings) for seat, player in enumerate(s.players)
                 if any(player is policy for policy in self.trained)}
        pairs = list(zip(episodes, seatings, strict=True))[:keep_transcripts]
        kept = [transcript(episode, s.players, slot, iteration=iteration, seed=s.seed,
                           trained_seats=list(s.trained)) for slot, (episode, s) in enumerate(pairs)]
        stats = [Counter({k: v - old[k] for k, v in policy.stats.items()})
                 for policy, old in zip(self.trained, before, strict=True)]
        return RolloutResult(episodes, chats, kept, stats=stats[0],
                             coplayer_stats=stats[1] if len(stats) > 1 else Counter())

    def close(self) -> None:
        """Nothing to release: the games ran in this process."""
