"""The loss terms of a batch of chats, recomputed exactly as the sampler drew them (SPEC 3).

A *term* is one step of an answer (:attr:`ActionRecord.step_logprobs
<detente.policies.llm.ActionRecord.step_logprobs>`): a draw among legal
candidates (a choice, or one field of a proposal) or one token of a free-text
message. For each term the trainer needs ``log pi`` under the current weights,
with its gradient, and the entropy ``H`` of the distribution it was drawn from:

* message token t after the chat ``x``::

      log pi = log softmax(logits(x) / T)[t]         H = token entropy at T

* draw among candidates ``o_1..o_C`` after the chat ``x``, candidate c of tokens
  ``c_0 c_1 ...``::

      score(c) = sum_j log softmax(logits(x, c_<j))[c_j]     (temperature 1)
      log pi(o) = log softmax(score / T)[o]                   H = entropy of pi

  so the gradient flows through every candidate's score, and moves
  probability between the legal options only (never onto or off them).

Log-probabilities are over the tokenizer's vocabulary
(:func:`~detente.policies.llm.next_token_logprobs`), as in the sampler.

**Layout.** Each chat is fed once: its tokens, then *branch* tokens for the
candidates that were not drawn (the drawn one is in the chat). A branch token
sits at the position its candidate would have had and sees the chat up to its
draw, its branch ancestors and itself; an explicit ``(M, L, L)`` visibility
mask and position ids say so. Shared candidate prefixes are fed once, as in
the sampler's :func:`~detente.policies.llm.candidate_tree`.

**Shared prefix, computed once.** The chats of a micro-batch share their first
tokens (the system text and the rules; more when their games went the same
way). With ``share_prefix`` those ``P`` tokens are forwarded once, with
gradients, and their keys/values expanded (a view) to every row, whose
remaining tokens attend to them through a read-only cache; the backward then
accumulates every row's gradient into the one prefix. The loss and the
gradients equal those of the unshared forward (``tests/test_llm_terms.py``).

**A prefix tree of depth two.** What every chat of the whole *batch* shares
(``P0`` tokens: the system text and the rules) is forwarded once per update,
not once per micro-batch: :class:`BatchPrefix` runs it under torch's
checkpoint (keeping no activations), hands each micro-batch detached copies of
its hidden states and keys/values, and after the last micro-batch sends the
gradient they gathered back through it, which forwards it once more. A
micro-batch then forwards only its own longer common prefix ``[P0, P)`` over
it, then its rows. So micro-batches can
be small (little memory) without recomputing the rules in each, and the
prefix's activations are never held while they run: one more forward of P0
tokens per update (about 2% of the main job's update) for the memory of P0
trained tokens (0.2-0.5 GB on SmolLM2).

Shapes: ``M`` chats, ``L`` tokens per row (chat + branches, padded), ``P``
shared prefix, ``S = L - P``, ``n`` terms (messages' tokens first, then
draws), ``D`` draws, ``K`` candidates per draw at most (padded), ``V``
vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from detente.policies.llm import ActionRecord, Chat, Draw, next_token_logprobs
from detente.policies.llm_backend import decoder_forward


@dataclass
class TermBatch:
    """M chats laid out for one forward, and the terms read from it."""

    ids: Tensor
    """(M, L) long: each chat's tokens, then its branch tokens, then padding."""
    positions: Tensor
    """(M, L) long: position ids."""
    visible: Tensor
    """(M, L, L) bool: ``visible[m, i, j]`` = token i of row m attends to token j."""
    token_reads: Tensor
    """(n_tok, 3) long: ``(row, position, token)`` of every message token: the logits at
    ``position`` predict ``token``."""
    score_reads: Tensor
    """(n_read, 3) long: ``(row, position, token)`` of every candidate token of every draw."""
    score_slot: Tensor
    """(n_read,) long: which candidate the read belongs to, as ``draw * K + candidate``."""
    picks: Tensor
    """(D,) long: the drawn candidate of each draw."""
    legal: Tensor
    """(D, K) bool: candidate k exists in draw d (draws have K candidates at most)."""
    credit: Tensor
    """(n,) float: the credit of the round each term was written in."""
    logp_old: Tensor
    """(n,) float: the sampler's log-probability of each term."""
    lost: int = 0
    """Terms whose tokens could not be placed (their chat was re-tokenised after they were written)."""
    prefix: int = 0
    """P: the first P tokens of every row are the same chat tokens, forwarded once (0: no sharing)."""
    batch_prefix: int = 0
    """P0 <= P: the first tokens of every chat of the whole batch, which a :class:`BatchPrefix` forwards
    once for all its micro-batches (0: none)."""
    row_tokens: int = 0
    """Tokens of all rows (chat and branch tokens, no padding), counted as if nothing were shared."""

    @property
    def n_terms(self) -> int:
        return int(self.credit.shape[0])

    @property
    def unique_tokens(self) -> int:
        """Tokens one forward of the batch processes: the shared prefix once, then every row's own."""
        return self.row_tokens - self.prefix * (self.ids.shape[0] - 1)


def batch_prefix(batches: Sequence[TermBatch]) -> int:
    """P0 of the micro-batches of one batch (the same in each; 0 for no micro-batches)."""
    return batches[0].batch_prefix if batches else 0


def update_tokens(batches: Sequence[TermBatch]) -> int:
    """Tokens an update over ``batches`` forwards: the batch prefix once, then each micro-batch's own."""
    P0 = batch_prefix(batches)
    return P0 + sum(batch.unique_tokens - P0 for batch in batches)


@dataclass
class _Row:
    """One chat being laid out: its tokens, branch tokens after them, and the terms read from it."""

    tokens: list[int]
    positions: list[int]
    parents: dict[int, int] = field(default_factory=dict)
    """branch token index -> index of the token it hangs off (a chat token or an earlier branch)."""

    def branch(self, token: int, parent: int, position: int) -> int:
        self.tokens.append(token)
        self.positions.append(position)
        self.parents[len(self.tokens) - 1] = parent
        return len(self.tokens) - 1


def term_batch(
    chats: Sequence[Chat], credit: Tensor, pad_id: int = 0, share_prefix: bool = True, batch_prefix: int = 0
) -> TermBatch:
    """Lay out the terms of ``chats`` (row m gets ``credit[m, round]``, credit ``(M, T)``).

    Rejected replies are not trained (the game refused them); replies whose chat was
    re-tokenised later (``record.start`` None) cannot be placed and are counted in ``lost``.
    ``share_prefix``: forward the chats' common first tokens once (module docstring).
    ``batch_prefix``: the first tokens of these chats that a :class:`BatchPrefix` forwards (0: none).
    """
    rows: list[_Row] = []
    token_reads: list[tuple[int, int, int]] = []
    token_terms: list[tuple[float, float]] = []  # (credit, logp_old) per message token
    score_reads: list[tuple[int, int, int]] = []
    score_owner: list[tuple[int, int]] = []  # (draw, candidate) per score read
    draws: list[tuple[Draw, float, float]] = []  # (draw, credit, logp_old)
    lost = 0
    for m, chat in enumerate(chats):
        row = _Row(list(chat.token_ids), list(range(len(chat.token_ids))))
        rows.append(row)
        for record in chat.records:
            if record.rejected is not None or not record.token_ids:
                continue
            if record.start is None:
                lost += len(record.step_logprobs)
                continue
            c = float(credit[m, record.round])
            if record.kind == "message":
                for j, (token, logp) in enumerate(zip(record.token_ids, record.step_logprobs, strict=True)):
                    token_reads.append((m, record.start + j - 1, token))
                    token_terms.append((c, logp))
                continue
            for draw, logp in zip(record.draws, record.step_logprobs, strict=True):
                for k, reads in enumerate(_candidate_reads(row, record, draw)):
                    score_reads.extend((m, position, token) for position, token in reads)
                    score_owner.extend((len(draws), k) for _ in reads)
                draws.append((draw, c, logp))
    K = max((len(d.candidates) for d, _, _ in draws), default=1)  # candidates per draw, padded
    legal = torch.zeros(len(draws), K, dtype=torch.bool)
    for d, (draw, _, _) in enumerate(draws):
        legal[d, : len(draw.candidates)] = True
    ids, positions, visible = _pack(rows, pad_id)
    own = common_prefix([chat.token_ids for chat in chats]) if share_prefix and len(chats) > 1 else 0
    prefix = max(own, batch_prefix)
    return TermBatch(
        ids=ids, positions=positions, visible=visible,
        token_reads=_long(token_reads, 3), score_reads=_long(score_reads, 3),
        score_slot=torch.tensor([d * K + k for d, k in score_owner], dtype=torch.long),
        picks=torch.tensor([draw.pick for draw, _, _ in draws], dtype=torch.long),
        legal=legal,
        credit=torch.tensor([c for c, _ in token_terms] + [c for _, c, _ in draws], dtype=torch.float32),
        logp_old=torch.tensor([lp for _, lp in token_terms] + [lp for _, _, lp in draws],
                              dtype=torch.float32),
        lost=lost, prefix=prefix, batch_prefix=batch_prefix, row_tokens=sum(len(row.tokens) for row in rows),
    )


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """How many first tokens all ``sequences`` share."""
    shortest = min(len(s) for s in sequences)
    first = sequences[0]
    for i in range(shortest):
        if any(s[i] != first[i] for s in sequences):
            return i
    return shortest


def _candidate_reads(row: _Row, record: ActionRecord, draw: Draw) -> list[list[tuple[int, int]]]:
    """Per candidate, the ``(position, token)`` reads that score it; adds the branch tokens it needs.

    The drawn candidate lies in the chat, its first token at ``anchor + 1``: its prefix of length
    j ends at ``anchor + j``. Other prefixes become branch tokens at the positions they would have.
    """
    assert record.start is not None
    anchor = record.start + draw.offset - 1  # the chat token whose logits predict every first token
    chosen = draw.candidates[draw.pick]
    nodes = {tuple(chosen[:j]): anchor + j for j in range(1, len(chosen) + 1)}  # prefix -> row index
    reads = []
    for candidate in draw.candidates:
        parent = anchor
        for j in range(1, len(candidate)):
            prefix = tuple(candidate[:j])
            if prefix not in nodes:
                nodes[prefix] = row.branch(candidate[j - 1], parent, anchor + j)
            parent = nodes[prefix]
        reads.append([(anchor if j == 0 else nodes[tuple(candidate[:j])], candidate[j])
                      for j in range(len(candidate))])
    return reads


def _pack(rows: Sequence[_Row], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """Padded ids and positions (M, L), and the visibility (M, L, L): causal over each chat, a branch
    token sees what its parent sees plus itself, padding sees only itself."""
    M, L = len(rows), max(len(row.tokens) for row in rows)  # M chats, L tokens per row
    ids = torch.full((M, L), pad_id, dtype=torch.long)
    positions = torch.zeros(M, L, dtype=torch.long)
    visible = torch.eye(L, dtype=torch.bool).repeat(M, 1, 1)  # (M, L, L)
    for m, row in enumerate(rows):
        n = len(row.tokens)
        chat = n - len(row.parents)
        ids[m, :n] = torch.tensor(row.tokens, dtype=torch.long)
        positions[m, :n] = torch.tensor(row.positions, dtype=torch.long)
        visible[m, :chat, :chat] = torch.ones(chat, chat, dtype=torch.bool).tril()
        for index in range(chat, n):
            visible[m, index] = visible[m, row.parents[index]]
            visible[m, index, index] = True
    return ids, positions, visible


def _long(rows: list[tuple[int, ...]], width: int) -> Tensor:
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), width)


# --------------------------------------------------------------------------
# The forward
# --------------------------------------------------------------------------
def term_logprobs(
    model: Any, batch: TermBatch, vocab: int, temperature: float, prefix: Prefix | None = None
) -> tuple[Tensor, Tensor]:
    """``log pi`` and entropy ``H`` of every term, both (n,), messages' tokens first, then draws.

    One forward of ``batch``; ``lm_head`` runs only at the positions read (the ``(M, L, V)``
    logits of every position are never formed, except for models whose head does more than a
    linear map, which take the full forward). ``prefix``: the batch's first tokens, already
    forwarded by a :class:`BatchPrefix` (None: this forward computes all of them).
    """
    T = temperature
    at = _logits_at(model, batch, prefix)
    # message tokens: log softmax(logits / T)[t]
    tok = batch.token_reads
    tok_logp = next_token_logprobs(at(tok[:, 0], tok[:, 1]), vocab, T)  # (n_tok, V)
    msg_logp = tok_logp.gather(1, tok[:, 2:3]).squeeze(1)  # (n_tok,)
    msg_H = -(tok_logp.exp() * tok_logp).sum(-1)  # (n_tok,)
    # draws: score(c) = sum_j log softmax(logits)[c_j], log pi = log softmax(score / T)
    reads = batch.score_reads
    D, K = batch.legal.shape  # D draws, K candidates at most
    read_logp = next_token_logprobs(at(reads[:, 0], reads[:, 1]), vocab)  # (n_read, V)
    per_read = read_logp.gather(1, reads[:, 2:3]).squeeze(1)  # (n_read,)
    scores = per_read.new_zeros(D * K).index_add(0, batch.score_slot, per_read).view(D, K)  # (D, K)
    pi_logp = (scores / T).masked_fill(~batch.legal, float("-inf")).log_softmax(-1)  # (D, K)
    draw_logp = pi_logp.gather(1, batch.picks[:, None]).squeeze(1)  # (D,)
    draw_H = -(pi_logp.exp() * pi_logp.masked_fill(~batch.legal, 0.0)).sum(-1)  # (D,)
    return torch.cat([msg_logp, draw_logp]), torch.cat([msg_H, draw_H])


@dataclass
class Prefix:
    """The first ``P`` tokens of every row, forwarded once as one row."""

    hidden: Tensor
    """(1, P, H): the decoder's last hidden state at each prefix token."""
    layers: list[KeysValues]
    """Per layer, the prefix's keys and values, each (1, kv_heads, P, head_dim)."""

    @property
    def length(self) -> int:
        return int(self.hidden.shape[1])


def forward_prefix(model: Any, batch: TermBatch, upto: int, before: Prefix | None = None) -> Prefix:
    """Row 0's first ``upto`` tokens forwarded as one row: the tokens from ``before.length`` on, over
    ``before``'s keys/values (None: from the first token). The result covers all ``upto`` tokens."""
    param = next(model.parameters())
    start = before.length if before is not None else 0
    visible = batch.visible[:1, start:upto, :upto].to(param.device)  # causal over the chat tokens
    capture = CaptureKV(before.layers if before is not None else None)
    hidden, _, _ = decoder_forward(  # (1, upto - start, H)
        model, input_ids=batch.ids[:1, start:upto].to(param.device),
        attention_mask=_additive(visible, param.dtype),
        position_ids=batch.positions[:1, start:upto].to(param.device), past_key_values=capture,
        use_cache=False)
    if before is not None:
        hidden = torch.cat([before.hidden, hidden], dim=1)
    return Prefix(hidden, capture.layers)


class BatchPrefix:
    """The first tokens every chat of a batch shares, forwarded once for all its micro-batches.

    Each micro-batch reads detached copies (leaves) of the prefix's hidden states and keys/values.
    The prefix's forward is checkpointed, so its activations are not held while the micro-batches
    run: :meth:`backward` forwards it again, with a graph, and sends the gradient the leaves
    gathered through it: the chain rule split at the prefix's outputs,
    ``d loss / d w = sum_m (d loss_m / d out) (d out / d w)``, so the gradients are those of
    forwarding the prefix inside every micro-batch. Run it, and :meth:`backward`, with the same
    adapter active and in the same train/eval mode (both forwards must compute the same outputs).
    """

    def __init__(self, model: Any, batch: TermBatch, length: int) -> None:
        # torch's checkpoint keeps only the inputs and runs the forward again in the backward, with
        # the RNG state of the first run (the same dropout masks)
        self._outputs = list(checkpoint(lambda: tuple(_flat(forward_prefix(model, batch, length))),
                                        use_reentrant=False))
        self._leaves = [t.detach().requires_grad_() for t in self._outputs]
        hidden, *flat = self._leaves
        self.prefix = Prefix(hidden, [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)])

    def backward(self) -> None:
        """``d loss / d weights`` through the prefix, from the gradient its leaves gathered."""
        pairs = [(out, leaf.grad) for out, leaf in zip(self._outputs, self._leaves, strict=True)
                 if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([out for out, _ in pairs], [grad for _, grad in pairs])


def _flat(prefix: Prefix) -> list[Tensor]:
    """The prefix's hidden states, then each layer's keys and values."""
    return [prefix.hidden, *(t for kv in prefix.layers for t in kv)]


def _logits_at(model: Any, batch: TermBatch, before: Prefix | None = None) -> Any:
    """A function ``(rows, positions) -> (n, V)`` float logits of one forward of ``batch``.

    ``logits = head(h)`` with ``h`` the decoder's last hidden state, taken at the positions read
    before the head (:func:`~detente.policies.llm_backend.decoder_forward`). With a shared prefix,
    positions before ``P`` read the prefix's one forward (over ``before``, the batch's prefix, when
    given), the others their row's.
    """
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    visible = batch.visible.to(device)  # (M, L, L)
    ids, positions = batch.ids.to(device), batch.positions.to(device)
    P = batch.prefix
    if P == 0:
        hidden, head, _ = decoder_forward(model, input_ids=ids, attention_mask=_additive(visible, dtype),
                                          position_ids=positions, use_cache=False)  # hidden: (M, L, H)
        return lambda rows, pos: head(hidden[rows.to(device), pos.to(device)]).float()
    # the shared prefix, once: (1, P), its keys/values per layer
    prefix = before if before is not None and before.length == P else forward_prefix(model, batch, P, before)
    # every row's own tokens, over the prefix's keys/values expanded to all M rows (views: the backward
    # sums every row's gradient into the one prefix)
    M = ids.shape[0]
    shared = SharedPrefixKV([(k.expand(M, -1, -1, -1), v.expand(M, -1, -1, -1)) for k, v in prefix.layers])
    suffix_hidden, head, _ = decoder_forward(model, input_ids=ids[:, P:],
                                             attention_mask=_additive(visible[:, P:, :], dtype),
                                             position_ids=positions[:, P:], past_key_values=shared,
                                             use_cache=False)  # (M, S, H)

    def logits(rows: Tensor, pos: Tensor) -> Tensor:
        rows, pos = rows.to(device), pos.to(device)
        in_prefix = (pos < P)[:, None]  # (n, 1)
        h = torch.where(in_prefix, prefix.hidden[0, pos.clamp(max=P - 1)],
                        suffix_hidden[rows, (pos - P).clamp(min=0)])  # (n, H)
        return head(h).float()

    return logits


def _additive(visible: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean visibility ``(B, Q, K)`` as the additive 4D mask ``(B, 1, Q, K)`` attention takes."""
    mask = torch.zeros(visible.shape, dtype=dtype, device=visible.device)
    return mask.masked_fill_(~visible, torch.finfo(dtype).min)[:, None]


KeysValues = tuple[Tensor, Tensor]
"""One layer's keys and values, each ``(batch, kv_heads, tokens, head_dim)``."""


class CaptureKV:
    """A cache that records each layer's keys/values (a prefix forward with gradients), after those of
    ``past`` (per layer, of the tokens before; None: no tokens before), which it does not change.

    Recording overwrites, so a layer recomputed by gradient checkpointing records the same again.
    """

    def __init__(self, past: list[KeysValues] | None = None) -> None:
        self.past = past
        self.by_layer: dict[int, KeysValues] = {}

    @property
    def layers(self) -> list[KeysValues]:
        return [self.by_layer[i] for i in sorted(self.by_layer)]

    def update(self, keys: Tensor, values: Tensor, layer_idx: int, *_: Any, **__: Any) -> KeysValues:
        if self.past is not None:
            k, v = self.past[layer_idx]
            keys, values = torch.cat([k, keys], dim=-2), torch.cat([v, values], dim=-2)
        self.by_layer[layer_idx] = (keys, values)
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.past[0][0].shape[-2]) if self.past is not None else 0


class SharedPrefixKV:
    """A read-only cache: every layer attends to the shared prefix's keys/values, then its own.

    Nothing is stored, so a layer recomputed by gradient checkpointing sees exactly what it saw.
    """

    def __init__(self, layers: list[KeysValues]) -> None:
        self.prefix = layers  # per layer (keys, values): (M, kv_heads, P, head_dim)

    def update(self, keys: Tensor, values: Tensor, layer_idx: int, *_: Any, **__: Any) -> KeysValues:
        k, v = self.prefix[layer_idx]
        return torch.cat([k, keys], dim=-2), torch.cat([v, values], dim=-2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.prefix[0][0].shape[-2])
