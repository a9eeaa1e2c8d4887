"""Run ``detente ARGS`` in this process and SIGKILL it the N-th time it reaches POINT.

    python kill_driver.py POINT N ARGS...

POINT is where the process dies (tests/test_kill_resume.py):

* ``rollout``: as the learner is asked for a batch of decisions;
* ``update``: inside the loss forward of an update;
* ``adapter-write``: inside ``save()``, the adapter's files written to their temporary folder;
* ``fsync``: inside an atomic write, the temporary file written but not yet renamed;
* ``metrics-torn``: halfway through appending a metrics line;
* ``before-save``: between the metrics append and the checkpoint;
* ``none``: never (the command runs to its end).

The kill is a real SIGKILL of this process: no exception handler, no ``finally``, no flush runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def on_nth_call(owner: object, name: str, n: int, before: bool = True) -> None:
    """Replace ``owner.name`` with a wrapper that kills the process at its n-th call."""
    real = getattr(owner, name)
    calls = {"count": 0}

    def wrapper(*args, **kwargs):
        calls["count"] += 1
        if before and calls["count"] == n:
            die()
        result = real(*args, **kwargs)
        if not before and calls["count"] == n:
            die()
        return result

    setattr(owner, name, wrapper)


def main() -> int:
    point, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    import safetensors.torch

    import detente.train.adapter as adapter
    import detente.train.llm as trainer
    import detente.train.metrics as metrics
    from detente.cli import main as detente
    from detente.policies.llm import LLMPolicy

    if point == "rollout":
        on_nth_call(LLMPolicy, "act", n)
    elif point == "update":
        on_nth_call(adapter, "term_logprobs", n)
    elif point == "adapter-write":
        on_nth_call(safetensors.torch, "save_file", n, before=False)
    elif point == "fsync":
        on_nth_call(os, "fsync", n, before=False)
    elif point == "before-save":
        on_nth_call(trainer.LLMTrainer, "save", n)
    elif point == "metrics-torn":
        calls = {"count": 0}
        real = metrics.append_metrics

        def torn(folder, line):
            calls["count"] += 1
            if calls["count"] == n:
                text = json.dumps(line.to_json())
                with open(folder / "metrics.jsonl", "a") as handle:
                    handle.write(text[: len(text) // 2])
                die()
            real(folder, line)

        metrics.append_metrics = torn
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")
    return detente(args)


if __name__ == "__main__":
    sys.exit(main())
