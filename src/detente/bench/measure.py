"""Instruments of ``detente bench``: a clock that waits for the GPU, the peak memory of a block, and
what the machine is."""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import torch

MIB = 1024 * 1024
RSS_EVERY_S = 0.005
"""How often the memory sampler reads the resident set size."""


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``: the peak memory increase during the block, in MiB
    (``peak.mib``).

    On CPU: the largest resident set size (``VmRSS`` of ``/proc/self/status``, Linux) that a
    thread reading it every :data:`RSS_EVERY_S` seconds saw, minus the one at the start. On CUDA:
    torch's peak allocated GPU memory during the block minus the memory allocated at its start.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib = 0.0
        self._start = 0
        self._peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            self._start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._start = self._peak = rss_bytes()
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self._peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._sampler.join()
            self._peak = max(self._peak, rss_bytes())
        self.mib = (self._peak - self._start) / MIB

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            self._stop.wait(RSS_EVERY_S)


def rss_bytes() -> int:
    """The process's resident set size now (``VmRSS`` in ``/proc/self/status``)."""
    return _status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """The process's peak resident set size (``VmHWM`` in ``/proc/self/status``); writing ``5`` to
    ``/proc/self/clear_refs`` resets it to the current size."""
    return _status_bytes("VmHWM")


def _status_bytes(field: str) -> int:
    """A size field of ``/proc/self/status`` (Linux), given there in kB, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def machine(device: torch.device, dtype: torch.dtype, model: str, parameters: int) -> dict[str, Any]:
    """What the figures were measured on: CPU model and cores, torch threads, library versions, the
    device (and GPU name), the dtype, the model and P (its parameters outside the embeddings)."""
    import transformers

    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(dtype).removeprefix("torch."), "model": model, "parameters": parameters,
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()
