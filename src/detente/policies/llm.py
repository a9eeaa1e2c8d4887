"""LLMPolicy: a language model with one LoRA adapter (or none) playing detente games.

Design: DESIGN.md "policies/" and "Models"; the sampling follows the paper's
setting (Piche et al., arXiv 2511.19405: temperature 1.0, LoRA on every linear
layer) with exact sampling over legal actions instead of free text + parsing.

* **One chat per (game slot, seat).** The game's new text for the seat is a
  user turn, the policy's answers are assistant turns, formatted by the
  tokenizer's own chat template. A rejected answer is followed by a short user
  turn with the game's reason. The chat's token ids grow append-only: each
  turn adds the tokens of the newly rendered text, the answers add exactly the
  tokens that were sampled.
* **Choices** (:class:`~detente.games.base.ChoiceSpec`) are sampled exactly:
  every option's tokens are scored after the chat in one batched forward
  (options packed as a token tree, :func:`candidate_tree`), and an option is
  drawn from ``pi(o) = softmax(score(o) / T)``, ``score(o)`` the summed
  log-probabilities of its tokens (:func:`candidate_scores`).
* **Proposals** (:class:`~detente.games.base.ProposalSpec`) are sampled field
  by field: the reply is ``pieces[0] + v0 + pieces[1] + v1 + ...``; for field i
  each value ``0..high`` (with the piece after it) is scored after the text so
  far and one is drawn as above. The log-probability is the sum over fields;
  the fixed pieces are forced, never drawn, so they carry no probability.
* **Messages** (:class:`~detente.games.base.MessageSpec`) are sampled token by
  token from ``softmax(logits / T)``, up to a token limit derived from
  ``max_chars``; a reply without the delimiters is wrapped in them. The game
  validates it.
* **One distribution, everywhere.** Token log-probabilities are taken over
  the tokenizer's vocabulary only (:func:`next_token_logprobs`: ids a model
  pads its head with are never drawn). What is recorded is the log-probability
  under the rule that drew the answer, and the trainer recomputes exactly that
  (:mod:`detente.train.terms`).
* **KV cache.** Each chat keeps the keys/values of its tokens between calls,
  so a round costs its new tokens only (``use_cache=False`` recomputes every
  chat from the start each call, for comparison).
* **Shared prefixes, computed once.** Chats that start a batch without a cache
  (the first decision of every game) share most of their tokens: the system
  text and the rules. Their token ids are walked as a prefix tree and every
  segment that two or more chats share (at least :data:`SHARED_MIN` tokens) is
  forwarded once; each chat then starts from those keys/values
  (``share_prefixes=False`` forwards every chat in full, for comparison).
* **Records.** Every answer appends an :class:`ActionRecord` to
  ``policy.chats[slot][seat]`` (a :class:`Chat`, reset by
  :meth:`LLMPolicy.begin`): the action tokens, the round, where the tokens sit
  in the chat's token ids, and one sampler log-probability per *step* of the
  answer: per :class:`Draw` for choices and proposals (with every candidate,
  so a trainer can score them all again), per token for messages.
* **Non-finite numbers stop the policy.** A distribution with NaN or infinite
  logits raises :class:`~detente.errors.NonFiniteError` naming the policy,
  instead of silently drawing option 0.

Several policies can share one :class:`~detente.policies.llm_backend.LoRAModel`
(one copy of the base weights): ``LLMPolicy(lm, "learner")``, ``LLMPolicy(lm, None)``
for the reference model, ``policy.with_adapter("past-10")``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from detente.errors import NonFiniteError
from detente.games.base import ActionSpec, ChoiceSpec, MessageSpec, ParseError, ProposalSpec, Seat
from detente.policies.base import Decision, Policy
from detente.policies.chat import user_turn
from detente.policies.llm_backend import KV, LoRAModel, PackedBatch, Query

log = logging.getLogger(__name__)

_PROBE = "detente-probe-5e1f"
SHARED_MIN = 16
"""Shortest chat segment worth one shared forward (a game's rules are hundreds of tokens)."""

Kind = Literal["choice", "proposal", "message"]
Backend = Literal["transformers", "vllm"]


# --------------------------------------------------------------------------
# What is recorded
# --------------------------------------------------------------------------
@dataclass
class Draw:
    """One exact draw among legal alternatives: a choice, or one field of a proposal.

    ``pi(o) = softmax(score(o) / T)`` over the candidates, ``score(o)`` the summed
    log-probabilities of candidate o's tokens after the chat so far.
    """

    offset: int
    """Index in the record's ``token_ids`` of the drawn candidate's first token: every candidate is
    scored after the chat tokens before it."""
    candidates: list[list[int]]
    """Token ids of every legal alternative, in option / value order."""
    pick: int
    """Index of the drawn candidate."""
    logprobs: list[float]
    """``log pi(o)`` of every candidate (temperature applied; the temperature-1 one when greedy)."""


@dataclass
class ActionRecord:
    """One answer of the policy, with what a trainer needs to score it again."""

    round: int
    """``decision.game.round`` when the answer was given."""
    slot: int
    seat: int
    kind: Kind
    reply: str
    """The text handed to the game."""
    token_ids: list[int]
    """The action tokens: the assistant reply exactly as sampled (forced pieces included)."""
    step_logprobs: list[float]
    """Sampler log-probability of each step of the answer, under the rule that drew it: per draw
    (``log pi(o)`` over the legal candidates at temperature T) for choices and proposals, per token
    (``log softmax(logits / T)``) for messages. All 0.0 when greedy (temperature 0)."""
    logprob: float
    """Log-probability of the whole reply: the sum of ``step_logprobs``."""
    start: int | None
    """Index of ``token_ids[0]`` in the chat's ``Chat.token_ids`` (None if the chat
    had to be re-tokenised later, see ``Chat.resets``)."""
    attempt: int = 0
    """0 for a first answer, n for the n-th re-ask after rejected answers."""
    adapter: str | None = None
    """Adapter that acted (None: the base model)."""
    choice: int | tuple[int, ...] | None = None
    """The option index (choice) or counts (proposal) sampled; None for messages."""
    draws: list[Draw] = field(default_factory=list)
    """The draws of a choice (one) or proposal (one per field); empty for messages."""
    rejected: str | None = None
    """Why the game refuses this reply (its parser's reason), None for a valid reply. Checked
    when the reply is made, so it also covers a last try that ended in the game's fallback."""


@dataclass
class Chat:
    """One seat's chat in one game: messages, token ids, and the policy's answers."""

    messages: list[dict[str, str]] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    """Every token of the chat so far, as the model saw it."""
    records: list[ActionRecord] = field(default_factory=list)
    resets: int = 0
    """Times the chat template re-rendered history differently and the ids were rebuilt."""
    text: str = field(default="", repr=False)
    """The rendered text the token ids stand for."""
    kv: KV | None = field(default=None, repr=False)
    """Cached keys/values of a prefix of ``token_ids``."""

    def action_mask(self) -> list[bool]:
        """``mask[i]`` is True where ``token_ids[i]`` is an action token of some record."""
        mask = [False] * len(self.token_ids)
        for record in self.records:
            if record.start is not None:
                for i in range(record.start, record.start + len(record.token_ids)):
                    mask[i] = True
        return mask

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ActionRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> ActionRecord:
        return self.records[index]


# --------------------------------------------------------------------------
# Scoring candidates: pure functions
# --------------------------------------------------------------------------
def next_token_logprobs(logits: torch.Tensor, vocab: int, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits[..., :vocab] / T)``: the next-token distribution over the tokenizer's
    vocabulary (the ids a model pads its head with past it are never drawn). ``(..., V_model)`` ->
    ``(..., vocab)``."""
    logits = logits[..., :vocab]
    if temperature != 1.0:
        logits = logits / temperature
    return logits.log_softmax(dim=-1)


@dataclass(frozen=True)
class CandidateTree:
    """The candidates of one draw as a token tree after a chain of new chat tokens.

    ``query`` feeds the chain (kept in the cache) and the candidates' tokens as scoring
    branches; shared candidate prefixes are fed once. ``reads[c]`` lists, for each token of
    candidate c, the row of the query's returned logits that predicts it and the token id.
    """

    query: Query
    reads: list[list[tuple[int, int]]]


def candidate_tree(chain: Sequence[int], candidates: Sequence[Sequence[int]]) -> CandidateTree:
    """The query that scores every candidate after ``chain`` (the chat's uncached tokens, >= 1).

    Token j of candidate c is predicted by the logits after its prefix ``c[:j]``: the last chain
    token for j = 0, else the tree node of that prefix (one node per distinct prefix).
    """
    if not chain:
        raise ValueError("candidate_tree needs at least one chain token: its logits score the first "
                         "token of every candidate")
    tokens, parents = list(chain), list(range(-1, len(chain) - 1))
    last = len(chain) - 1
    nodes: dict[tuple[int, ...], int] = {}  # candidate prefix -> index of its last token in the query
    for candidate in candidates:
        parent = last
        for j in range(1, len(candidate)):
            prefix = tuple(candidate[:j])
            if prefix not in nodes:
                tokens.append(candidate[j - 1])
                parents.append(parent)
                nodes[prefix] = len(tokens) - 1
            parent = nodes[prefix]
    want = sorted({last, *nodes.values()})
    row = {index: r for r, index in enumerate(want)}
    reads = [[(row[last if j == 0 else nodes[tuple(c[:j])]], c[j]) for j in range(len(c))]
             for c in candidates]
    return CandidateTree(Query(tokens, parents, len(chain), want), reads)


def candidate_scores(reads: Sequence[Sequence[tuple[int, int]]], logp: torch.Tensor) -> torch.Tensor:
    """``score(c) = sum_j log p(c_j | chat, c_<j)`` of every candidate, ``(C,)``, from the
    next-token log-probabilities ``logp`` ``(rows, V)`` and each candidate's ``(row, token)`` reads."""
    return torch.stack([logp[[r for r, _ in c], [t for _, t in c]].sum() for c in reads])


def check_finite(values: torch.Tensor, policy: str, what: str) -> None:
    """Raise :class:`NonFiniteError` naming ``policy`` if ``values`` hold a NaN or an infinity."""
    if not bool(torch.isfinite(values).all()):
        raise NonFiniteError(f"policy {policy!r}: the {what} it samples from holds NaN or infinite "
                             "numbers (corrupt weights or a diverged update); refusing to draw from it")


# --------------------------------------------------------------------------
# Internal work items
# --------------------------------------------------------------------------
@dataclass
class _Step:
    """Forced tokens, then a draw among candidate token sequences."""

    forced: list[int]
    forced_text: str
    candidates: list[list[int]]
    texts: list[str]


@dataclass
class _Job:
    decision: Decision
    chat: Chat
    kind: Kind
    attempt: int
    start: int
    steps: list[_Step] = field(default_factory=list)
    action_ids: list[int] = field(default_factory=list)
    step_logprobs: list[float] = field(default_factory=list)
    draws: list[Draw] = field(default_factory=list)
    content: str = ""
    reply: str = ""


# --------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------
class LLMPolicy(Policy):
    """A language model answering game decisions with one LoRA adapter, or the base model.

    ``model`` is a shared :class:`LoRAModel` or a name for
    :func:`detente.models.load_model` (then a new LoRAModel with ``lora_r`` /
    ``lora_alpha`` is made). ``adapter`` names the adapter to act with (added
    fresh if the model does not have it yet); None acts with adapters off.
    """

    def __init__(
        self,
        model: LoRAModel | str = "smollm2",
        adapter: str | None = None,
        *,
        name: str | None = None,
        temperature: float = 1.0,
        system_prompt: str | None = None,
        use_cache: bool = True,
        share_prefixes: bool = True,
        backend: Backend = "transformers",
        vllm_memory: float | None = None,
        batch_size: int = 16,
        max_message_tokens: int | None = None,
        lora_r: int | None = None,
        lora_alpha: int | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_message_tokens is not None and max_message_tokens < 1:
            raise ValueError(f"max_message_tokens must be >= 1, got {max_message_tokens}")
        if isinstance(model, str):
            lora = {k: v for k, v in (("lora_r", lora_r), ("lora_alpha", lora_alpha)) if v is not None}
            model = LoRAModel.load(model, device=device, dtype=dtype, **lora)
        elif lora_r is not None or lora_alpha is not None or device is not None or dtype is not None:
            raise ValueError("lora_r, lora_alpha, device and dtype belong to the shared LoRAModel; "
                             "set them when loading it")
        if adapter is not None and adapter not in model.adapters:
            model.add_adapter(adapter)
        self.lm = model
        self.adapter = adapter
        self.name = name or f"llm:{adapter or 'base'}"
        self.temperature = temperature
        self.system_prompt = system_prompt
        self.use_cache = use_cache
        self.share_prefixes = share_prefixes
        self.backend = backend
        self.vllm_memory = vllm_memory
        self.batch_size = batch_size
        self.max_message_tokens = max_message_tokens
        self.chats: list[list[Chat]] = []
        """``chats[slot][seat]``: the chat and records of that seat in that game."""
        self.stats: Counter[str] = Counter()
        """Counts: decisions, invalid (replies the game's parser refuses), rejected (re-asks
        received), wrapped and truncated messages, template_resets, forward_tokens (tokens
        through the model), shared_tokens (tokens a shared prefix saved), generated_tokens,
        act_ms (milliseconds spent acting)."""
        tokenizer = model.tokenizer
        self._vocab = len(tokenizer)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._stop_ids = _stop_ids(model)
        self._specials = _special_strings(tokenizer)
        self._turn_tail = self._assistant_tail()
        self._steps_cache: dict[ActionSpec, list[_Step]] = {}

    def with_adapter(self, adapter: str | None, *, name: str | None = None) -> LLMPolicy:
        """Another view on the same model and settings, acting with ``adapter``."""
        return LLMPolicy(
            self.lm, adapter, name=name, temperature=self.temperature, system_prompt=self.system_prompt,
            use_cache=self.use_cache, share_prefixes=self.share_prefixes, backend=self.backend,
            vllm_memory=self.vllm_memory, batch_size=self.batch_size,
            max_message_tokens=self.max_message_tokens,
        )

    # -- Policy protocol ----------------------------------------------------
    def begin(self, n_slots: int) -> None:
        self.chats = [[self._new_chat(), self._new_chat()] for _ in range(n_slots)]

    def chat(self, slot: int, seat: Seat) -> list[dict[str, str]] | None:
        return self.chats[slot][seat].messages if slot < len(self.chats) else None

    def act(self, decisions: Sequence[Decision]) -> list[str]:
        started = time.perf_counter()
        jobs = [self._open(d) for d in decisions]
        scored = [j for j in jobs if j.kind != "message"]
        written = [j for j in jobs if j.kind == "message"]
        if self.backend == "vllm":
            self._act_on_vllm(scored, written)
        else:
            self._act_on_transformers(scored, written)
        for job in jobs:
            self._close(job)
        self.stats["decisions"] += len(jobs)
        self.stats["act_ms"] += round(1000 * (time.perf_counter() - started))
        return [job.reply for job in jobs]

    def _act_on_transformers(self, scored: list[_Job], written: list[_Job]) -> None:
        """Shared prefixes once, then choices/proposals and messages in chunks of ``batch_size`` chats."""
        with self.lm.active(self.adapter) as model, torch.no_grad():
            if self.use_cache and self.share_prefixes:
                fresh = {id(job.chat): job.chat for job in scored + written if job.chat.kv is None}
                self._share(model, list(fresh.values()), 0, None)
            for chunk in _chunks(scored, self.batch_size):
                self._score(model, chunk)
            for chunk in _chunks(written, self.batch_size):
                self._write(model, chunk)

    def _act_on_vllm(self, scored: list[_Job], written: list[_Job]) -> None:
        """The same draws and records, with the model's numbers from a vLLM engine
        (:mod:`detente.policies.vllm_backend`)."""
        from detente.policies.vllm_backend import VLLMEngine

        engine = VLLMEngine.for_model(self.lm, self.vllm_memory)
        if scored:
            self._score_on(engine, scored)
        if written:
            self._write_on(engine, written)

    def end(self) -> None:
        """Drop every chat's key/value cache (records and token ids stay)."""
        for pair in self.chats:
            for chat in pair:
                chat.kv = None

    def cache_bytes(self) -> int:
        """Bytes of key/value cache the chats hold now."""
        return sum(chat.kv.nbytes() for pair in self.chats for chat in pair if chat.kv is not None)

    # -- chats ----------------------------------------------------------------
    def _new_chat(self) -> Chat:
        chat = Chat()
        if self.system_prompt:
            chat.messages.append({"role": "system", "content": self.system_prompt})
        return chat

    def _chat(self, slot: int, seat: int) -> Chat:
        while len(self.chats) <= slot:
            self.chats.append([self._new_chat(), self._new_chat()])
        return self.chats[slot][seat]

    def _open(self, decision: Decision) -> _Job:
        """Add the user turn for ``decision`` to its chat and tokenise it."""
        chat = self._chat(decision.slot, decision.seat)
        attempt = 0
        if decision.retry is not None:
            if chat.records:
                last = chat.records[-1]
                last.rejected = last.rejected or decision.retry.reason
                attempt = last.attempt + 1
            self.stats["rejected"] += 1
        chat.messages.append({"role": "user", "content": self._defuse(user_turn(decision))})
        self._render(chat)
        spec = decision.spec
        kind: Kind = ("choice" if isinstance(spec, ChoiceSpec)
                      else "proposal" if isinstance(spec, ProposalSpec) else "message")
        job = _Job(decision, chat, kind, attempt, start=len(chat.token_ids))
        if kind != "message":
            job.steps = self._steps(spec)
        return job

    def _render(self, chat: Chat) -> None:
        """Extend the chat's token ids with the tokens of its newly rendered text."""
        text = self.lm.tokenizer.apply_chat_template(
            chat.messages, tokenize=False, add_generation_prompt=True
        )
        if text.startswith(chat.text):
            chat.token_ids.extend(self._encode(text[len(chat.text):]))
        else:
            # The template rendered earlier turns differently: rebuild the ids from scratch.
            log.warning("chat template is not prefix-stable; re-tokenising a chat (records lose their start)")
            chat.token_ids[:] = self._encode(text)
            chat.kv = None
            chat.resets += 1
            for record in chat.records:
                record.start = None
            self.stats["template_resets"] += 1
        chat.text = text

    def _close(self, job: _Job) -> None:
        """Append the answer to the chat and record it."""
        chat, d = job.chat, job.decision
        chat.messages.append({"role": "assistant", "content": job.content})
        choice: int | tuple[int, ...] | None = None
        if job.kind == "choice":
            choice = job.draws[0].pick
        elif job.kind == "proposal":
            choice = tuple(draw.pick for draw in job.draws)
        parsed = d.game.parse(d.seat, job.reply)  # never raises
        rejected = parsed.reason if isinstance(parsed, ParseError) else None
        self.stats["invalid"] += rejected is not None
        chat.records.append(ActionRecord(
            round=d.game.round, slot=d.slot, seat=d.seat, kind=job.kind, reply=job.reply,
            token_ids=job.action_ids, step_logprobs=job.step_logprobs, logprob=sum(job.step_logprobs),
            start=job.start, attempt=job.attempt, adapter=self.adapter, choice=choice, draws=job.draws,
            rejected=rejected,
        ))

    # -- choices and proposals ------------------------------------------------
    def _steps(self, spec: ActionSpec) -> list[_Step]:
        """The forced tokens and candidates of a choice or proposal (tokenised once per spec)."""
        if spec in self._steps_cache:
            return self._steps_cache[spec]
        if isinstance(spec, ChoiceSpec):
            steps = [_Step([], "", [self._encode(o) for o in spec.options], list(spec.options))]
        else:
            assert isinstance(spec, ProposalSpec)
            steps = []
            for i in range(len(spec.fields)):
                texts = [f"{value}{spec.pieces[i + 1]}" for value in range(spec.high + 1)]
                forced = spec.pieces[0] if i == 0 else ""
                steps.append(_Step(self._encode(forced), forced, [self._encode(t) for t in texts], texts))
        self._steps_cache[spec] = steps
        return steps

    def _score(self, model: Any, jobs: list[_Job]) -> None:
        """Answer choices/proposals: per step, one packed forward scores every candidate of every chat."""
        batch = self._batch(model, jobs)
        for s in range(max(len(job.steps) for job in jobs)):
            # 1. force the step's fixed tokens, then hang its candidates off each chat as a tree
            trees: list[CandidateTree | None] = []
            for b, job in enumerate(jobs):
                if s >= len(job.steps):
                    trees.append(None)
                    continue
                step = job.steps[s]
                self._append(job, step.forced, step.forced_text)
                tree = candidate_tree(job.chat.token_ids[batch.lengths[b]:], step.candidates)
                trees.append(tree)
                self.stats["forward_tokens"] += len(tree.query.tokens)
            # 2. one forward scores every candidate
            outs = batch.step([tree.query if tree else None for tree in trees])
            # 3. draw, and append the drawn candidate to the chat
            for job, tree, logits in zip(jobs, trees, outs, strict=True):
                if tree is None:
                    continue
                step = job.steps[s]
                scores = candidate_scores(tree.reads, next_token_logprobs(logits, self._vocab))
                pick, logprobs = self._draw(scores, job.decision)
                offset = len(job.action_ids)
                job.draws.append(Draw(offset, step.candidates, pick, logprobs))
                job.step_logprobs.append(logprobs[pick] if self.temperature > 0 else 0.0)
                self._append(job, step.candidates[pick], step.texts[pick])
        for job in jobs:
            self._render_reply(job)
        self._keep(jobs, batch)

    @staticmethod
    def _render_reply(job: _Job) -> None:
        """The canonical text of a choice or proposal from its draws."""
        spec = job.decision.spec
        picks = [draw.pick for draw in job.draws]
        if isinstance(spec, ChoiceSpec):
            job.reply = spec.render(picks[0])
        elif isinstance(spec, ProposalSpec):
            job.reply = spec.render(tuple(picks))
        job.content = job.reply

    @staticmethod
    def _append(job: _Job, ids: Sequence[int], text: str) -> None:
        """Add answer tokens (and the text they stand for) to the job's chat and action."""
        job.chat.token_ids.extend(ids)
        job.chat.text += text
        job.action_ids.extend(ids)

    def _draw(self, scores: torch.Tensor, decision: Decision) -> tuple[int, list[float]]:
        """Index drawn from ``pi = softmax(scores / T)`` with the decision's rng, and ``log pi``.

        Temperature 0 takes the best option (the distribution reported is the temperature-1 one).
        """
        values = scores.double()
        check_finite(values, self.name, "option scores")
        if self.temperature == 0:
            return int(values.argmax()), values.log_softmax(dim=0).tolist()
        logp = (values / self.temperature).log_softmax(dim=0)
        index, _ = _inverse_cdf(logp, decision.rng.random())
        return index, logp.tolist()

    def _score_on(self, engine: Any, jobs: list[_Job]) -> None:
        """Choices/proposals on vLLM: per step, the next-token log-probabilities at every candidate-tree
        node of every job in one request batch, then the same draw as :meth:`_score`."""
        for s in range(max(len(job.steps) for job in jobs)):
            active = [job for job in jobs if s < len(job.steps)]
            trees = []
            for job in active:
                step = job.steps[s]
                self._append(job, step.forced, step.forced_text)
                trees.append(_children(step.candidates))
            prompts = [job.chat.token_ids + list(prefix) for job, tree in zip(active, trees, strict=True)
                       for prefix in tree]
            wanted = [sorted(children) for tree in trees for children in tree.values()]
            answers = iter(engine.next_logprobs(prompts, wanted, self.adapter))
            self.stats["forward_tokens"] += sum(len(p) for p in prompts)
            for job, tree in zip(active, trees, strict=True):
                step = job.steps[s]
                logp = {prefix: next(answers) for prefix in tree}
                scores = torch.tensor([sum(logp[tuple(c[:j])][c[j]] for j in range(len(c)))
                                       for c in step.candidates], dtype=torch.float64)
                pick, logprobs = self._draw(scores, job.decision)
                job.draws.append(Draw(len(job.action_ids), step.candidates, pick, logprobs))
                job.step_logprobs.append(logprobs[pick] if self.temperature > 0 else 0.0)
                self._append(job, step.candidates[pick], step.texts[pick])
        for job in jobs:
            self._render_reply(job)

    def _write_on(self, engine: Any, jobs: list[_Job]) -> None:
        """Messages on vLLM: one seeded sampling request each (the seed from the decision's stream)."""
        specs = [job.decision.spec for job in jobs]
        outs = engine.sample(
            [job.chat.token_ids for job in jobs], self.temperature,
            [self._message_limit(spec) for spec in specs], [job.decision.rng.getrandbits(31) for job in jobs],
            [spec.end if isinstance(spec, MessageSpec) else "" for spec in specs], sorted(self._stop_ids),
            self.adapter)
        for job, out in zip(jobs, outs, strict=True):
            job.chat.token_ids.extend(out.token_ids)
            job.action_ids.extend(out.token_ids)
            job.step_logprobs.extend(out.logprobs)
            self.stats["generated_tokens"] += len(out.token_ids)
            self.stats["truncated"] += out.finish_reason == "length"
            stopped = bool(out.token_ids) and out.token_ids[-1] in self._stop_ids
            self._finish_message(job, out.token_ids, stopped)

    # -- messages ----------------------------------------------------------------
    def _write(self, model: Any, jobs: list[_Job]) -> None:
        """Sample messages token by token, all chats of the chunk together."""
        batch = self._batch(model, jobs)
        limits = [self._message_limit(job.decision.spec) for job in jobs]
        generated: list[list[int]] = [[] for _ in jobs]
        active = [True] * len(jobs)
        stopped = [False] * len(jobs)
        while any(active):
            queries: list[Query | None] = []
            for b, job in enumerate(jobs):
                if not active[b]:
                    queries.append(None)
                    continue
                chain = job.chat.token_ids[batch.lengths[b]:]
                queries.append(Query.chain(chain, [len(chain) - 1]))
                self.stats["forward_tokens"] += len(chain)
            outs = batch.step(queries)
            for b, job in enumerate(jobs):
                if not active[b]:
                    continue
                token, sampled = self._sample(outs[b][0], job.decision)
                generated[b].append(token)
                job.chat.token_ids.append(token)
                job.action_ids.append(token)
                job.step_logprobs.append(sampled)
                spec = job.decision.spec
                assert isinstance(spec, MessageSpec)
                if token in self._stop_ids:
                    active[b], stopped[b] = False, True
                elif spec.end in self._decode(generated[b][-24:]):
                    active[b] = False
                elif len(generated[b]) >= limits[b]:
                    active[b] = False
                    self.stats["truncated"] += 1
        self.stats["generated_tokens"] += sum(len(g) for g in generated)
        for b, job in enumerate(jobs):
            self._finish_message(job, generated[b], stopped[b])
        self._keep(jobs, batch)

    def _finish_message(self, job: _Job, generated: list[int], stopped: bool) -> None:
        spec = job.decision.spec
        assert isinstance(spec, MessageSpec)
        content_ids = generated[:-1] if stopped else generated
        job.content = self._decode(content_ids)
        job.chat.text += job.content
        if stopped:
            stop_text = self._decode(generated[-1:])
            if stop_text and self._turn_tail.startswith(stop_text):
                job.chat.text += stop_text  # the template closes the turn with this same token
            else:  # a stop token the template does not write: leave it out of the chat
                job.chat.token_ids.pop()
                job.action_ids.pop()
                job.step_logprobs.pop()
        visible = self.lm.tokenizer.decode(content_ids, skip_special_tokens=True)
        if spec.start not in visible and spec.end not in visible:
            visible = spec.render(visible.strip())
            self.stats["wrapped"] += 1
        job.reply = visible

    def _sample(self, logits: torch.Tensor, decision: Decision) -> tuple[int, float]:
        """Draw one token from ``softmax(logits / T)``: (token, its log-probability; 0.0 when greedy)."""
        check_finite(logits, self.name, "next-token distribution")
        if self.temperature == 0:
            return int(logits[: self._vocab].argmax()), 0.0
        logp = next_token_logprobs(logits.double(), self._vocab, self.temperature)
        return _inverse_cdf(logp, decision.rng.random())

    def _message_limit(self, spec: ActionSpec) -> int:
        if not isinstance(spec, MessageSpec):
            raise TypeError(f"a message limit needs a MessageSpec, got {spec!r}")
        if self.max_message_tokens is not None:
            return self.max_message_tokens
        # ~3+ characters per token in English, plus room for the two delimiters
        return spec.max_chars // 3 + len(self._encode(spec.start)) + len(self._encode(spec.end)) + 4

    # -- cache helpers ------------------------------------------------------------
    def _share(self, model: Any, chats: list[Chat], start: int, past: KV | None) -> None:
        """Give ``chats`` (which share their first ``start`` tokens, cached in ``past``) the keys/values of
        every longer segment two or more of them share, each forwarded once (a prefix tree)."""
        groups: dict[int, list[Chat]] = {}
        for chat in chats:
            if len(chat.token_ids) - 1 > start:  # the last token is always fed again: its logits are needed
                groups.setdefault(chat.token_ids[start], []).append(chat)
            else:
                chat.kv = past
        for group in groups.values():
            end = _common_end(group, start, min(len(chat.token_ids) for chat in group) - 1)
            if len(group) < 2 or end - start < SHARED_MIN:
                for chat in group:
                    chat.kv = past
                continue
            batch = PackedBatch(model, [past], self._pad_id)
            batch.step([Query.chain(group[0].token_ids[start:end])])
            self.stats["forward_tokens"] += end - start
            self.stats["shared_tokens"] += (end - start) * (len(group) - 1)
            self._share(model, group, end, batch.caches()[0])


    def _batch(self, model: Any, jobs: list[_Job]) -> PackedBatch:
        """The packed batch of the jobs' chats. It holds their caches now (the chats get them back
        from :meth:`_keep`), so their own copies are dropped at once instead of living beside it."""
        batch = PackedBatch(model, [self._past(job.chat) for job in jobs], self._pad_id)
        for job in jobs:
            job.chat.kv = None
        return batch

    def _past(self, chat: Chat) -> KV | None:
        """The chat's cache, cropped so at least its last token is fed again (its logits are needed)."""
        if not self.use_cache or chat.kv is None:
            return None
        return chat.kv.crop(len(chat.token_ids) - 1)

    def _keep(self, jobs: list[_Job], batch: PackedBatch) -> None:
        if not self.use_cache:
            return
        for job, kv in zip(jobs, batch.caches(), strict=True):
            job.chat.kv = kv

    # -- text helpers -------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _decode(self, ids: list[int]) -> str:
        return self.lm.tokenizer.decode(ids, skip_special_tokens=False)

    def _defuse(self, text: str) -> str:
        """Break control-token strings in game text (a message may quote them) so they stay plain text."""
        for special in self._specials:
            if special in text:
                text = text.replace(special, special[0] + "\u200b" + special[1:])
        return text

    def _assistant_tail(self) -> str:
        """What the chat template writes right after an assistant message (e.g. ``<|im_end|>\\n``)."""
        probe = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _PROBE}]
        try:
            text = self.lm.tokenizer.apply_chat_template(probe, tokenize=False)
        except Exception as error:  # a template that refuses the probe: never keep stop tokens
            log.debug("chat template probe failed: %s", error)
            return ""
        index = text.rfind(_PROBE)
        return text[index + len(_PROBE):] if index >= 0 else ""


def _inverse_cdf(logp: torch.Tensor, u: float) -> tuple[int, float]:
    """Index of the first cumulative probability above ``u`` (a uniform draw), and its log-prob."""
    cdf = logp.exp().cumsum(dim=0)
    index = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])], dtype=cdf.dtype,
                                                     device=cdf.device), right=True)[0])
    index = min(index, logp.shape[0] - 1)
    while index > 0 and not torch.isfinite(logp[index]):  # never land on a zero-probability entry
        index -= 1
    return index, float(logp[index])


def _children(candidates: Sequence[Sequence[int]]) -> dict[tuple[int, ...], set[int]]:
    """Each candidate prefix that has a next token (the empty one first) -> its next tokens."""
    tree: dict[tuple[int, ...], set[int]] = {}
    for candidate in candidates:
        for j, token in enumerate(candidate):
            tree.setdefault(tuple(candidate[:j]), set()).add(token)
    return tree


def _common_end(chats: Sequence[Chat], start: int, limit: int) -> int:
    """The first index at or after ``start`` (at most ``limit``) where the chats' token ids differ."""
    end = start
    first = chats[0].token_ids
    while end < limit and all(chat.token_ids[end] == first[end] for chat in chats):
        end += 1
    return end


def _chunks(items: list[_Job], size: int) -> Iterator[list[_Job]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _stop_ids(lm: LoRAModel) -> set[int]:
    """Token ids that end an assistant turn: the tokenizer's EOS and the model's generation EOS ids."""
    ids: set[int] = set()
    if lm.tokenizer.eos_token_id is not None:
        ids.add(int(lm.tokenizer.eos_token_id))
    config = getattr(lm.base, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    return ids


def _special_strings(tokenizer: Any) -> list[str]:
    strings = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(token, "special", False):
            strings.add(str(token.content))
    return sorted((s for s in strings if len(s) > 1), key=len, reverse=True)
