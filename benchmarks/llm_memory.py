"""Memory of one shared base model with 1, 2 and 4 LoRA adapters loaded.

Usage::

    python benchmarks/llm_memory.py            # tiny random Llama built in memory
    python benchmarks/llm_memory.py smollm2    # the embedded SmolLM2-135M (or any model name / folder)

For each adapter count, after one forward with every adapter (so that all
weights are resident), it prints the process resident memory (RSS), the bytes
of distinct base-parameter storage and of the adapters, and what as many
separate model copies would take. The base bytes stay the same however many
adapters are loaded: every policy view shares one copy of the weights.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path


def load(name: str, lora_r: int, lora_alpha: int):
    from detente.policies.llm_backend import LoRAModel

    if name != "tiny":
        return LoRAModel.load(name, lora_r=lora_r, lora_alpha=lora_alpha)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_model import tiny_model, tiny_tokenizer

    return LoRAModel(tiny_model(), tiny_tokenizer(), lora_r=lora_r, lora_alpha=lora_alpha)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="tiny",
                        help="'tiny' (default), 'smollm2', or a model name/folder")
    parser.add_argument("--lora-r", type=int, default=32, help="LoRA rank (paper: 32)")
    parser.add_argument("--lora-alpha", type=int, default=64, help="LoRA alpha (paper: 64)")
    args = parser.parse_args()

    import torch

    from detente.bench.measure import MIB, rss_bytes
    from detente.policies.llm import LLMPolicy

    start_rss = rss_bytes()
    lm = load(args.model, args.lora_r, args.lora_alpha)
    policies = []
    print(f"model {args.model!r}, LoRA rank {args.lora_r} alpha {args.lora_alpha}, "
          f"process RSS before loading {start_rss / MIB:.1f} MiB")
    print(f"{'adapters':>8} {'RSS MiB':>9} {'base MiB':>9} {'adapters MiB':>13} {'N copies MiB':>13} "
          f"{'base storages':>14}")
    for count in (1, 2, 4):
        while len(lm.adapters) < count:
            name = f"agent-{len(lm.adapters)}"
            lm.add_adapter(name)
            policies.append(LLMPolicy(lm, name))
        ids = torch.tensor([lm.tokenizer("Choose your action: <A> or <B>.")["input_ids"]], device=lm.device)
        for name in lm.adapters:  # touch every weight (safetensors are memory-mapped until used)
            with lm.active(name) as model, torch.no_grad():
                model(input_ids=ids)
        gc.collect()
        sizes = lm.parameter_bytes()
        base = sizes.pop("base")
        adapters = sum(sizes.values())
        named = lm.model.named_parameters()
        storages = {p.untyped_storage().data_ptr() for n, p in named if "lora_" not in n}
        print(f"{count:>8} {rss_bytes() / MIB:>9.1f} {base / MIB:>9.1f} {adapters / MIB:>13.2f} "
              f"{count * base / MIB:>13.1f} {len(storages):>14}")
    assert all(p.lm is lm for p in policies)
    print(f"{len(policies)} policies share one LoRAModel; torch {torch.__version__}, "
          f"dtype {lm.dtype}, device {lm.device}")


if __name__ == "__main__":
    main()
