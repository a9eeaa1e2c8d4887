"""The rollout of one training iteration: where its games are played, and what comes back.

The trainer plans the games (:func:`detente.train.seating.plan`) and hands them
to a rollout backend, which plays them and returns a :class:`RolloutResult`:
the finished episodes, the learner's chat of every seat it held (records,
token ids, sampler log-probabilities), the transcripts to keep and the
learner's counters. :class:`LocalRollout` plays everything in this process; a
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
    """``(slot, seat)`` -> the learner's chat there, for every seat the learner held."""
    transcripts: list[TranscriptLine] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    """The learner's counters over this rollout (template_resets, truncated, wrapped, ...)."""
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
    """Plays the iteration's games in this process, all at once (every game of a batch advances together)."""

    def __init__(self, learner: LLMPolicy) -> None:
        self.learner = learner

    def run(self, seatings: Sequence[Seating], streams: Sequence[str], new_game: Callable[[], Game],
            keep_transcripts: int, iteration: int) -> RolloutResult:
        before = Counter(self.learner.stats)
        games = [new_game() for _ in seatings]
        episodes = play(games, [s.players for s in seatings], [s.seed for s in seatings], streams=streams)
        chats = {(slot, seat): self.learner.chats[slot][seat]
                 for slot, s in enumerate(seatings) for seat, player in enumerate(s.players)
                 if player is self.learner}
        pairs = list(zip(episodes, seatings, strict=True))[:keep_transcripts]
        kept = [transcript(episode, s.players, slot, iteration=iteration, seed=s.seed,
                           trained_seats=list(s.trained)) for slot, (episode, s) in enumerate(pairs)]
        stats = Counter({k: v - before[k] for k, v in self.learner.stats.items()})
        return RolloutResult(episodes, chats, kept, stats)

    def close(self) -> None:
        """Nothing to release: the games ran in this process."""
