"""The loss trains the policy that acted: log pi over the legal options at the sampling temperature.

A two-option choice on a tiny model, built by hand: the gradient of the trainer's loss equals the
analytic gradient of ``-C log softmax(s / T)[pick]`` (``s`` the options' summed token log-probs,
recomputed here with plain forwards), and differs from the raw token-level gradient the loss used
to take. The recorded log-probability equals the trainer's recomputation.
"""

from __future__ import annotations

import pytest
import torch

from detente.games.base import ChoiceSpec, ProposalSpec
from detente.policies.llm import LLMPolicy
from detente.rollout.play import play
from detente.train.loss import policy_loss
from detente.train.terms import term_batch, term_logprobs
from llm_helpers import FakeGame, perturb, self_play_batch
from tiny_model import tiny_lm

CREDIT = 1.7


def one_choice(temperature: float, spec=None):
    """A tiny model with a perturbed learner adapter that answered one decision of ``spec``."""
    lm = tiny_lm()
    lm.add_adapter("learner")
    perturb(lm, "learner", seed=5, scale=0.3)
    policy = LLMPolicy(lm, "learner", temperature=temperature)
    spec = spec or ChoiceSpec(("<A>", "<B>"))
    play([FakeGame(spec, n_rounds=1)], [(policy, policy)], [3])
    chat = policy.chats[0][0]
    return lm, chat, chat[0]


def lora_grads(lm):
    grads = {n: p.grad.clone() for n, p in lm.model.named_parameters() if p.grad is not None}
    lm.model.zero_grad(set_to_none=True)
    return grads


def summed_logprob(model, prefix: list[int], option: list[int]) -> torch.Tensor:
    """``sum_j log p(option_j | prefix, option_<j)`` from one plain forward, with gradient."""
    logits = model(input_ids=torch.tensor([prefix + option])).logits[0]
    logp = logits.float().log_softmax(-1)
    positions = torch.arange(len(prefix) - 1, len(prefix) + len(option) - 1)
    return logp[positions, torch.tensor(option)].sum()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_loss_gradient_is_the_gradient_of_log_softmax_over_the_legal_options(temperature):
    lm, chat, record = one_choice(temperature)
    (draw,) = record.draws
    params = lm.trainable_parameters("learner")
    prefix = chat.token_ids[:record.start]

    # the trainer's loss on this one term
    batch = term_batch([chat], torch.tensor([[CREDIT]]))
    with lm.active("learner") as model:
        logp, H = term_logprobs(model, batch, len(lm.tokenizer), temperature)
        policy_loss(logp, batch.credit, H, logp_sampler=batch.logp_old).backward()
    trainer = lora_grads(lm)

    # the analytic one: -C log softmax(s / T)[pick], s from plain forwards of prefix + option
    with lm.active("learner") as model:
        s = torch.stack([summed_logprob(model, prefix, c) for c in draw.candidates])
        log_pi = (s / temperature).log_softmax(0)
        (-CREDIT * log_pi[draw.pick]).backward()
    analytic = lora_grads(lm)

    # the raw token-level gradient of the chosen option's tokens (what the loss used to be)
    with lm.active("learner") as model:
        (-CREDIT * summed_logprob(model, prefix, draw.candidates[draw.pick])).backward()
    raw = lora_grads(lm)

    assert trainer.keys() == analytic.keys() and len(trainer) == len(params)
    for name in trainer:  # float32: equal to 1e-4 of each gradient's size
        assert float((trainer[name] - analytic[name]).norm()) <= 1e-4 * float(analytic[name].norm()), name
    difference = sum(float((trainer[n] - raw[n]).norm()) for n in trainer)
    assert difference > 1e-2 * sum(float(raw[n].norm()) for n in raw)
    # what the sampler recorded is what the trainer recomputes, and what the analytic one gives
    assert record.step_logprobs == pytest.approx([float(log_pi[draw.pick].detach())], abs=1e-5)
    assert float(logp[0].detach()) == pytest.approx(record.step_logprobs[0], abs=1e-5)
    # the entropy bonus is the entropy of that two-option distribution
    pi = log_pi.detach().exp()
    assert float(H[0].detach()) == pytest.approx(float(-(pi * log_pi.detach()).sum()), abs=1e-5)


def test_a_proposal_is_one_term_per_field_and_its_forced_pieces_are_not_trained():
    spec = ProposalSpec(fields=("hats", "books"), high=10, pieces=("<keep hats=", " books=", ">"))
    lm, chat, record = one_choice(1.0, spec)
    batch = term_batch([chat], torch.tensor([[1.0]]))
    assert batch.n_terms == 2 == len(record.draws)
    assert batch.token_reads.shape[0] == 0  # no message tokens; the pieces are forced
    with torch.no_grad(), lm.active("learner") as model:
        logp, _ = term_logprobs(model, batch, len(lm.tokenizer), 1.0)
    assert logp.tolist() == pytest.approx(record.step_logprobs, abs=1e-5)
    assert float(logp.sum()) == pytest.approx(record.logprob, abs=1e-5)


@pytest.mark.parametrize("game", ["ipd", "trust_split"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_shared_prefix_gives_the_unshared_loss_and_gradients(tmp_path, game, checkpointing):
    """The chats' common first tokens forwarded once, their keys/values expanded to every row: the same
    log-probabilities, entropies and LoRA gradients as forwarding every chat in full, with and without
    gradient checkpointing."""
    from detente.config import load_config
    from detente.train.llm import LLMTrainer

    cfg = load_config(None, ["agent.kind=llm", f"game.name={game}", "game.params={n_rounds: 2}",
                             "agent.max_message_tokens=5", "train.games_per_iteration=4",
                             "credit.group_size=2",
                             f"train.gradient_checkpointing={str(checkpointing).lower()}"])
    lm = tiny_lm()
    lm.add_adapter("learner")
    perturb(lm, "learner", seed=2, scale=0.3)
    trainer = LLMTrainer(cfg, tmp_path, lm=lm)
    chats, C = self_play_batch(trainer)
    results = {}
    for share in (True, False):
        batch = term_batch(chats, C, 0, share_prefix=share)
        with lm.active("learner") as model:
            model.train(checkpointing)
            logp, H = term_logprobs(model, batch, len(lm.tokenizer), 1.0)
            policy_loss(logp, batch.credit, H, eta=0.01).backward()
        results[share] = (batch, logp.detach(), H.detach(), lora_grads(lm))
    shared, unshared = results[True], results[False]
    assert shared[0].prefix > 50 and unshared[0].prefix == 0  # the rules, at least
    assert shared[0].unique_tokens < unshared[0].unique_tokens - 3 * shared[0].prefix
    torch.testing.assert_close(shared[1], unshared[1], atol=2e-5, rtol=0)
    torch.testing.assert_close(shared[2], unshared[2], atol=2e-5, rtol=0)
    assert shared[3].keys() == unshared[3].keys() and shared[3]
    for name, grad in unshared[3].items():
        assert float((shared[3][name] - grad).norm()) <= 1e-4 * float(grad.norm()) + 1e-7, name


@pytest.mark.parametrize("checkpointing", [False, True])
def test_an_update_in_small_micro_batches_over_the_batch_prefix_gives_the_unshared_gradients(
        tmp_path, checkpointing):
    """The batch's common first tokens forwarded once for micro-batches of about one chat each (and
    once more without the adapter, for the KL term): the LoRA gradients of one unshared forward of
    the whole batch. Another adapter is active when the update starts, as a second learner's would
    be; a checkpointed backward must still recompute the layers with the trained adapter."""
    from detente.config import load_config
    from detente.train.llm import LLMTrainer

    grads, counts = {}, {}
    checkpoint = f"train.gradient_checkpointing={str(checkpointing).lower()}"
    for name, settings in {
        "micro": ["train.micro_batch_tokens=64", checkpoint],
        "whole": ["train.micro_batch_tokens=100000", "train.share_prefix=false"],
    }.items():
        cfg = load_config(None, ["agent.kind=llm", "game.name=trust_split", "game.params={n_rounds: 2}",
                                 "agent.max_message_tokens=5", "train.games_per_iteration=4",
                                 "credit.group_size=2", "train.kl_coef=0.05", "train.grad_clip=1e9",
                                 *settings])
        lm = tiny_lm()
        for adapter, seed in (("learner", 2), ("other", 3)):
            lm.add_adapter(adapter)
            perturb(lm, adapter, seed=seed, scale=0.3)
        trainer = LLMTrainer(cfg, tmp_path / name, lm=lm)
        batches = trainer.main.term_batches(*self_play_batch(trainer))
        counts[name] = (len(batches), min(b.prefix for b in batches))
        flags = [(param, param.requires_grad) for param in lm.model.parameters()]
        lm.model.set_adapter("other")  # as the trainer leaves it: the trained adapter keeps its gradients
        for param, flag in flags:
            param.requires_grad_(flag)
        trainer.main.optimizer.step = lambda: None  # keep the gradients the update leaves
        losses = trainer.main.update(batches)
        assert losses["loss/kl"] > 0
        grads[name] = {n: p.grad.clone() for n, p in lm.model.named_parameters()
                       if p.grad is not None and ".learner." in n}
    assert counts["micro"][0] >= 4 and counts["micro"][1] > 50 and counts["whole"] == (1, 0)
    micro, whole = grads["micro"], grads["whole"]
    assert micro.keys() == whole.keys() and whole
    for name, grad in whole.items():
        assert float((micro[name] - grad).norm()) <= 1e-4 * float(grad.norm()) + 1e-7, name


def test_the_batch_prefix_is_forwarded_again_in_its_backward(tmp_path):
    """The batch prefix's forward is checkpointed: one forward when it is built, one more in its
    backward (its activations are not kept in between, while the micro-batches run), and that
    backward reaches the adapter."""
    from detente.config import load_config
    from detente.train.llm import LLMTrainer
    from detente.train.terms import BatchPrefix, batch_prefix

    cfg = load_config(None, ["agent.kind=llm", "game.name=trust_split", "game.params={n_rounds: 2}",
                             "agent.max_message_tokens=5", "train.games_per_iteration=4",
                             "credit.group_size=2", "train.micro_batch_tokens=64"])
    lm = tiny_lm()
    lm.add_adapter("learner")
    perturb(lm, "learner", seed=2, scale=0.3)
    trainer = LLMTrainer(cfg, tmp_path, lm=lm)
    batches = trainer.main.term_batches(*self_play_batch(trainer))
    P0 = batch_prefix(batches)
    assert P0 > 50  # the rules, at least
    lengths: list[int] = []
    hook = lm.base.get_input_embeddings().register_forward_hook(
        lambda module, args, out: lengths.append(args[0].shape[-1]))
    with trainer.main.training() as model:
        prefix = BatchPrefix(model, batches[0], P0)
        assert lengths == [P0]
        hidden = prefix.prefix.hidden
        assert hidden.shape[1] == P0 and hidden.grad_fn is None
        hidden.grad = torch.ones_like(hidden)  # as a micro-batch's backward would leave it
        prefix.backward()
    hook.remove()
    assert lengths == [P0, P0]
    grads = lora_grads(lm)
    assert grads and all(".learner." in name for name in grads)
    assert any(float(grad.norm()) > 0 for grad in grads.values())
