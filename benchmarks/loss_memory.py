"""Peak memory and time of one training micro-batch: full logits, action positions only, checkpointing.

Usage::

    python benchmarks/loss_memory.py                      # tiny random Llama built in memory
    python benchmarks/loss_memory.py smollm2 --chats 8 --tokens 1200

One micro-batch of ``--chats`` chats of ``--tokens`` random tokens, of which
``--action-share`` are action tokens, goes through the loss's forward and
backward with a LoRA adapter, three ways, each in a fresh child process so that
each peak is its own:

* ``full``: ``model(...).logits[action]``, the (M, L, V) logits of every position;
* ``action``: :func:`detente.policies.llm_backend.decoder_forward`, the head on the action
  positions' hidden states only (what the trainer does).
* ``checkpointing``: ``action`` with transformers' gradient checkpointing
  (``train.gradient_checkpointing: true``).

It prints the peak resident memory of each child during the forward and
backward (Linux ``VmHWM``, reset after loading) above its memory after loading
the model, the wall time of the forward+backward, and the
largest difference of the action log-probabilities from the full way's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WAYS = ("full", "action", "checkpointing")


def measure(args: argparse.Namespace) -> dict[str, float]:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from llm_memory import load

    from detente.bench.measure import MIB, peak_rss_bytes, rss_bytes
    from detente.policies.llm_backend import decoder_forward

    torch.manual_seed(0)
    lm = load(args.model, 8, 16)
    lm.add_adapter("learner")
    vocab = len(lm.tokenizer)
    ids = torch.randint(0, vocab, (args.chats, args.tokens))
    attention = torch.ones_like(ids)
    action = torch.rand(args.chats, args.tokens) < args.action_share
    if args.way == "checkpointing":
        lm.base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    loaded = rss_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    with lm.active("learner") as model:
        model.train(args.way == "checkpointing")
        began = time.perf_counter()
        if args.way == "full":
            logits = model(input_ids=ids, attention_mask=attention).logits[action]
        else:
            hidden, head, _ = decoder_forward(model, input_ids=ids, attention_mask=attention, use_cache=False)
            logits = head(hidden[action])  # the head only where a loss term reads
        logp = torch.log_softmax(logits.float(), dim=-1)
        targets = ids.roll(-1, dims=1)[action]
        chosen = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        chosen.sum().backward()
        seconds = time.perf_counter() - began
    peak = peak_rss_bytes()
    return {"peak_above_loaded_mib": (peak - loaded) / MIB, "seconds": seconds,
            "n_action": int(action.sum()), "logp": chosen.detach().tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="tiny", help="'tiny' (default), 'smollm2', or a model")
    parser.add_argument("--chats", type=int, default=8, help="chats in the micro-batch (default 8)")
    parser.add_argument("--tokens", type=int, default=1200, help="tokens per chat (default 1200)")
    parser.add_argument("--action-share", type=float, default=0.05,
                        help="share of positions that are action tokens (default 0.05)")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.way:
        print(json.dumps(measure(args)))
        return
    results = {}
    for way in WAYS:
        command = [sys.executable, __file__, args.model, "--chats", str(args.chats), "--tokens",
                   str(args.tokens), "--action-share", str(args.action_share), "--way", way]
        # a fixed mmap threshold: freed tensors go back to the OS at once, so the peak RSS follows the
        # live tensors rather than the allocator's history (glibc raises the threshold dynamically)
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        results[way] = json.loads(out.strip().splitlines()[-1])
    diff = max(abs(a - b) for way in WAYS[1:]
               for a, b in zip(results["full"]["logp"], results[way]["logp"], strict=True))
    print(f"model {args.model!r}: {args.chats} chats x {args.tokens} tokens, "
          f"{results['full']['n_action']} action tokens")
    print(f"{'way':>13} {'peak MiB above loaded':>22} {'forward+backward s':>19}")
    for way, r in results.items():
        print(f"{way:>13} {r['peak_above_loaded_mib']:>22.1f} {r['seconds']:>19.2f}")
    print(f"max |log-prob difference| from the full way: {diff:.2e}")


if __name__ == "__main__":
    main()
