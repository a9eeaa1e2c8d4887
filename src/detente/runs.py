"""A run on disk: ``runs/<name>/`` with config, metrics, checkpoints.

Every write is atomic — written to a temporary file in the same folder, then
renamed over the target — so a run killed at any moment leaves either the old
or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
MATRIX = "matrix.json"
"""Cross-play result (:meth:`detente.eval.tournament.CrossPlay.to_json`) of a run or eval folder."""
TRANSCRIPTS = "transcripts"
"""Folder of transcript lines: ``iter_N.jsonl`` (training iteration N), ``crossplay.jsonl`` (an eval)."""
CROSSPLAY_TRANSCRIPTS = f"{TRANSCRIPTS}/crossplay.jsonl"


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
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

    The swap is a delete and a rename: a kill between them leaves no ``target``
    (and a stray ``.target-*`` folder), never a half-written one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; the whole file is rewritten atomically so no line is ever torn."""
    old = path.read_text() if path.exists() else ""
    write_atomic(path, old + json.dumps(record, sort_keys=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
