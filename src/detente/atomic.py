"""Writes that a kill cannot tear: the primitives every file detente writes goes through.

Every write is atomic — written to a temporary file in the same folder,
fsynced, then renamed over the target — so a process killed at any moment
leaves either the old or the new file, never half of one. Temporary names
start with :data:`TMP_PREFIX`; :func:`sweep_temp` removes the ones a kill left
behind. :func:`append_line` appends one fsynced line (a kill can tear only
that last line; :func:`read_lines` with ``tolerate_torn_tail`` drops it).
Knows nothing of runs, games or models.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_PREFIX = ".detente-tmp."
"""Every temporary file or folder detente writes starts with this."""


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, after an fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.")
    try:
        with os.fdopen(fd, mode) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``target`` to fill; on success it replaces ``target``.

    A new target is one rename. An existing one is swapped with the new folder in one atomic
    exchange (Linux ``renameat2(RENAME_EXCHANGE)``), so ``target`` exists at every moment, then
    the old copy is deleted. Where the exchange is unavailable the old folder is renamed aside
    first and a kill in between leaves it there as a temporary (:func:`sweep_temp` removes it).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}.", dir=target.parent))
    try:
        yield tmp
        for path in tmp.rglob("*"):
            if path.is_file():
                _fsync(path)
        if not target.exists():
            tmp.rename(target)
        elif _exchange(tmp, target):
            shutil.rmtree(tmp)  # now the old folder
        else:
            aside = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}.old.", dir=target.parent))
            target.rename(aside / target.name)
            tmp.rename(target)
            shutil.rmtree(aside)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Any:
    libc_name = ctypes.util.find_library("c")
    return None if libc_name is None else getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (``renameat2`` with ``RENAME_EXCHANGE``); False if unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def append_line(path: Path, line: str) -> None:
    """Append ``line`` and a newline, and fsync (a kill can tear only this last line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_lines(path: Path, *, tolerate_torn_tail: bool = False) -> list[str]:
    """The non-empty lines of ``path`` ([] if it does not exist); ``tolerate_torn_tail`` drops a last
    line without its newline (an append cut short by a kill)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines()
    if tolerate_torn_tail and lines and not text.endswith("\n"):
        lines = lines[:-1]
    return [line for line in lines if line.strip()]


def sweep_temp(folder: Path) -> list[Path]:
    """Delete every temporary file or folder a killed write left under ``folder``; return them."""
    found = sorted(Path(folder).rglob(f"{TMP_PREFIX}*"), key=lambda p: len(p.parts))
    removed = []
    for path in found:
        if not path.exists() and not path.is_symlink():
            continue  # inside a temporary folder removed already
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed


def fresh_dir(folder: Path) -> None:
    """Make ``folder`` an empty folder: an existing one is first renamed aside (atomic), then deleted,
    so nothing of an old run (checkpoints, buffer, transcripts) survives into a new one."""
    folder = Path(folder)
    if folder.exists():
        aside = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{folder.name}.old.", dir=folder.parent))
        folder.rename(aside / folder.name)
        shutil.rmtree(aside)
    folder.mkdir(parents=True)
