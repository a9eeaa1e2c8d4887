"""Training commands run under tcmalloc where the system has it: the same figures, about 40% less memory.

glibc's malloc keeps most of the memory the LoRA update frees (the activations of every
micro-batch), so the main job peaks at 3.5 GB; under tcmalloc it peaks at 2.1-2.3 GB with the same
results (docs/PERFORMANCE.md, "The allocator"). vLLM's CPU build recommends the same library.
A process cannot change its allocator once started, so :func:`exec_under_tcmalloc` starts the
command again, once, with ``libtcmalloc_minimal.so.4`` in ``LD_PRELOAD``. Nothing happens where the
library is not installed (Debian/Ubuntu: ``apt install libtcmalloc-minimal4``), off Linux, when it
is already preloaded, or with ``DETENTE_ALLOCATOR=system``.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Mapping, Sequence

LIBRARY = "libtcmalloc_minimal.so.4"
_ARCH = sysconfig.get_config_var("MULTIARCH")  # e.g. x86_64-linux-gnu; None off Debian-built Pythons
SEARCH = (*([f"/usr/lib/{_ARCH}"] if _ARCH else []), "/usr/lib64", "/usr/local/lib")
"""Folders searched for :data:`LIBRARY`, in order: Debian's for this interpreter's architecture,
RPM-based systems', a local build's."""
OPT_OUT = "DETENTE_ALLOCATOR"
"""``DETENTE_ALLOCATOR=system`` keeps the system's malloc."""
COMMANDS = frozenset({"train", "exploit"})
"""The commands that train, where the allocator matters."""


def find_tcmalloc() -> str | None:
    """Path of the first :data:`LIBRARY` in :data:`SEARCH`, or None."""
    return next((path for folder in SEARCH if os.path.exists(path := os.path.join(folder, LIBRARY))), None)


def preload_env(environ: Mapping[str, str], library: str) -> dict[str, str] | None:
    """The environment to start again with ``library`` preloaded, or None when that is not wanted
    (opted out, or some tcmalloc already preloaded)."""
    preloaded = environ.get("LD_PRELOAD", "")
    if environ.get(OPT_OUT) == "system" or LIBRARY in preloaded:
        return None
    return {**environ, "LD_PRELOAD": ":".join(p for p in (library, preloaded) if p)}


def exec_under_tcmalloc(argv: Sequence[str]) -> None:
    """Replace this process by the same command under tcmalloc when ``argv`` (the arguments after
    ``detente``) names a training command and the library is there; otherwise return."""
    if not argv or argv[0] not in COMMANDS or not sys.platform.startswith("linux"):
        return
    library = find_tcmalloc()
    env = None if library is None else preload_env(os.environ, library)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
