"""Play batches of games between policies and record every decision.

All games of a batch advance together: at each step the pending decisions of
every game are grouped by policy and each policy answers its whole group in
one call. A reply that does not parse is re-asked (the decision carries the
parse error) up to ``max_tries`` times in all, then the game's fallback action
is taken and the decision is counted invalid; a person
(``Policy.reask_until_valid``) is asked until the answer parses. Nothing a
player writes can stop a batch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from detente.games.base import SEATS, Action, Game, ParseError, Seat, fallback_action
from detente.policies.base import Decision, Policy
from detente.runs import DecisionLine, TranscriptLine


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as it was taken."""

    round: int
    seat: Seat
    raw: str
    """The last raw text the player gave."""
    action: Action
    valid: bool
    tries: int


@dataclass
class Episode:
    """A finished game and how it was played."""

    game: Game
    players: tuple[str, str]
    decisions: list[DecisionRecord] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return sum(not d.valid for d in self.decisions)


def play(
    games: Sequence[Game],
    seatings: Sequence[tuple[Policy, Policy]],
    seeds: Sequence[int],
    max_tries: int = 3,
    streams: Sequence[int | str] | None = None,
) -> list[Episode]:
    """Reset ``games[i]`` with ``seeds[i]`` and play it to the end with ``seatings[i]``.

    ``seatings[i] = (policy in seat 0, policy in seat 1)``; the same policy
    object may sit in many games and in both seats. ``streams[i]`` seeds the
    players' randomness in game i (default: the game's seed). Games that share
    a seed to share their environment (a seed group) need distinct streams, or
    the same players would repeat the same game.

    ``policy.begin`` is called before the first decision and ``policy.end`` after the last
    (a language model frees its key/value caches there; its records stay).
    """
    streams = seeds if streams is None else streams
    if not len(games) == len(seatings) == len(seeds) == len(streams):
        raise ValueError(
            f"need one seating, one seed and one stream per game: {len(games)} games, "
            f"{len(seatings)} seatings, {len(seeds)} seeds, {len(streams)} streams"
        )
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")
    policies = list({id(p): p for pair in seatings for p in pair}.values())
    for policy in policies:
        policy.begin(len(games))
    episodes = []
    rngs = []
    for game, seating, seed, stream in zip(games, seatings, seeds, streams, strict=True):
        game.reset(seed)
        episodes.append(Episode(game, (seating[0].name, seating[1].name)))
        rngs.append(tuple(random.Random(f"{stream}:{seat}") for seat in SEATS))

    while True:
        asks = [
            Decision(game, seat, spec, slot, rngs[slot][seat])
            for slot, game in enumerate(games)
            for seat, spec in game.pending().items()
        ]
        if not asks:
            for policy in policies:
                policy.end()
            return episodes
        actions: dict[int, dict[Seat, Action]] = {d.slot: {} for d in asks}
        for ask, record in decide(asks, seatings, max_tries):
            actions[ask.slot][ask.seat] = record.action
            episodes[ask.slot].decisions.append(record)
        for slot, slot_actions in actions.items():
            games[slot].step(slot_actions)


def decide(
    asks: Sequence[Decision], seatings: Sequence[tuple[Policy, Policy]], max_tries: int = 3
) -> list[tuple[Decision, DecisionRecord]]:
    """Answer every decision (``seatings[slot][seat]`` answers): a reply that does not parse is re-asked
    with the parser's reason, up to ``max_tries`` times in all, then the game's fallback is taken
    and the record says invalid. A policy with ``reask_until_valid`` (a person) is asked until its
    reply parses. Pairs in the order the decisions were settled."""
    settled = []
    tries = 0
    while asks:
        tries += 1
        replies = _answer(asks, seatings)
        retry = []
        for ask, raw in zip(asks, replies, strict=True):
            parsed = ask.game.parse(ask.seat, raw)
            patient = seatings[ask.slot][ask.seat].reask_until_valid
            if isinstance(parsed, ParseError) and (patient or tries < max_tries):
                retry.append(replace(ask, retry=parsed))
                continue
            valid = not isinstance(parsed, ParseError)
            action = fallback_action(ask.spec) if isinstance(parsed, ParseError) else parsed
            record = DecisionRecord(ask.game.round, ask.seat, raw, action, valid, tries)
            settled.append((ask, record))
        asks = retry
    return settled


def transcript(
    episode: Episode, seating: tuple[Policy, Policy], slot: int, *, iteration: int | None = None,
    seed: int | None = None, trained_seats: Sequence[Seat] = (),
) -> TranscriptLine:
    """Game ``slot`` of the last batch as one transcript line (what ``detente report`` shows): the
    players, per-round rewards, every decision, each seat's chat if it kept one, and where it came from
    (training ``iteration`` and ``trained_seats``, the game ``seed``)."""
    chats = {seat: chat for seat, player in enumerate(seating)
             if (chat := player.chat(slot, seat)) is not None}
    decisions = [DecisionLine(round=d.round, seat=d.seat, raw=d.raw, valid=d.valid)
                 for d in episode.decisions]
    return TranscriptLine(
        slot=slot, players=[p.name for p in seating], round_rewards=episode.game.round_rewards,
        decisions=decisions, chats=chats, iteration=iteration, seed=seed, trained_seats=list(trained_seats),
    )


def _answer(asks: Sequence[Decision], seatings: Sequence[tuple[Policy, Policy]]) -> list[str]:
    """Ask each policy for all of its decisions in one call; replies in ``asks`` order."""
    groups: dict[int, tuple[Policy, list[int]]] = {}
    for i, ask in enumerate(asks):
        policy = seatings[ask.slot][ask.seat]
        groups.setdefault(id(policy), (policy, []))[1].append(i)
    replies: list[str] = [""] * len(asks)
    for policy, indices in groups.values():
        answers = policy.act([asks[i] for i in indices])
        if len(answers) != len(indices):
            raise RuntimeError(f"{policy!r} returned {len(answers)} replies for {len(indices)} decisions")
        for i, answer in zip(indices, answers, strict=True):
            replies[i] = answer
    return replies
