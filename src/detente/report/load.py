"""What a report shows, read from a run or eval folder through its records (:mod:`detente.runs`).

Each part is read on its own; a missing or unreadable file gives a note, not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detente.config import CONTRAST
from detente.runs import (
    CONFIG,
    CONTRAST_FILE,
    MATRIX,
    METRICS,
    ContrastRecord,
    CrossPlayRecord,
    MetricsLine,
    RunFileError,
    TranscriptLine,
    read_config_data,
    read_config_text,
    read_contrast,
    read_crossplay,
    read_transcripts,
    scan_metrics,
    transcript_files,
    transcript_iteration,
)

TRANSCRIPT_BUDGET = 20_000_000
"""Bytes of transcript files embedded at most; the newest iterations are kept, older ones left out."""


@dataclass
class TranscriptFile:
    """One transcript file's games: a training iteration's, or the cross-play's."""

    name: str
    iteration: int | None
    games: list[TranscriptLine]

    @property
    def label(self) -> str:
        return "cross-play" if self.iteration is None else f"iteration {self.iteration}"


@dataclass
class ContrastParts:
    """A contrast job's folder: each run's ``metrics.jsonl`` and ``contrast.json``, as far as they exist."""

    runs: dict[str, tuple[list[MetricsLine], int] | None] = field(default_factory=dict)
    """label -> (readable lines, unreadable count) of ``<label>/metrics.jsonl``; None: no such file yet."""
    record: ContrastRecord | None = None
    error: str | None = None
    """Why ``contrast.json`` could not be read (None: read, or not written yet)."""


@dataclass
class Loaded:
    """A folder's readable parts, and notes on what could not be read."""

    metrics: list[MetricsLine] = field(default_factory=list)
    bad_metrics: int = 0
    crossplay: CrossPlayRecord | None = None
    crossplay_error: str | None = None
    transcripts: list[TranscriptFile] = field(default_factory=list)
    transcript_notes: list[str] = field(default_factory=list)
    config_text: str | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)
    contrast: ContrastParts | None = None
    """None: not a contrast folder."""


def load_folder(folder: Path, budget: int = TRANSCRIPT_BUDGET) -> Loaded:
    loaded = Loaded()
    loaded.metrics, loaded.bad_metrics = scan_metrics(folder)
    if (folder / MATRIX).is_file():
        try:
            loaded.crossplay = read_crossplay(folder)
        except RunFileError as error:
            loaded.crossplay_error = str(error).removeprefix(f"{folder / MATRIX}: ")
    loaded.transcripts, loaded.transcript_notes = load_transcripts(folder, budget)
    loaded.config_text, loaded.facts = load_config_facts(folder)
    loaded.contrast = load_contrast(folder)
    if loaded.contrast is not None:
        loaded.facts.append(("contrast", " vs ".join(loaded.contrast.runs)))
    return loaded


def load_contrast(folder: Path) -> ContrastParts | None:
    """The parts of a contrast job's folder (its config.yaml has a ``contrast`` key, or it holds a
    ``contrast.json``); None for any other folder. The runs are the config's labels, in its order."""
    labels = contrast_labels(folder)
    if not labels and not (folder / CONTRAST_FILE).is_file():
        return None
    parts = ContrastParts()
    if (folder / CONTRAST_FILE).is_file():
        try:
            parts.record = read_contrast(folder)
            labels += [label for label in parts.record.runs if label not in labels]
        except RunFileError as error:
            parts.error = str(error).removeprefix(f"{folder / CONTRAST_FILE}: ")
    parts.runs = {label: scan_metrics(folder / label) if (folder / label / METRICS).is_file() else None
                  for label in labels}
    return parts


def contrast_labels(folder: Path) -> list[str]:
    """The run labels of the contrast config in ``folder/config.yaml``; [] for any other config."""
    if not (folder / CONFIG).is_file():
        return []
    try:
        runs = read_config_data(folder / CONFIG).get(CONTRAST)
    except RunFileError:
        return []
    return [str(label) for label in runs] if isinstance(runs, dict) else []


def load_transcripts(folder: Path, budget: int = TRANSCRIPT_BUDGET) -> tuple[list[TranscriptFile], list[str]]:
    """The transcript files, cross-play first, then iterations newest first, up to ``budget`` bytes."""
    files, notes = transcript_files(folder), []
    kept, used = [], 0
    for path in reversed(files):
        size = path.stat().st_size
        if kept and used + size > budget:
            break
        kept.append(path)
        used += size
    if len(kept) < len(files):
        notes.append(f"Transcripts are large: the newest {len(kept)} of {len(files)} iteration files "
                     f"are embedded ({used / 1e6:.0f} MB), older ones left out.")
    out, bad = [], 0
    for path in reversed(kept):
        games, wrong = read_transcripts(path)
        bad += wrong
        out.append(TranscriptFile(path.name, transcript_iteration(path), games))
    if bad:
        notes.append(f"{bad} transcript line(s) could not be read and were skipped.")
    return out, notes


def load_config_facts(folder: Path) -> tuple[str | None, list[tuple[str, str]]]:
    """config.yaml's text and a few (label, value) facts from it for the page header."""
    text = read_config_text(folder)
    if text is None:
        return None, []
    path = folder / CONFIG
    try:
        config = read_config_data(path)
    except RunFileError:  # not YAML: show the text, no facts
        return text, []
    facts: dict[str, str] = {}
    for label, keys in (("run", ("name",)), ("game", ("game", "name")),
                        ("algorithm", ("credit", "algorithm")), ("agent", ("agent", "kind")),
                        ("model", ("agent", "model")), ("co-player", ("coplayer",)),
                        ("iterations", ("train", "iterations")), ("seed", ("seed",))):
        value: object = config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            facts[label] = str(value)
    if facts.get("agent") == "tabular":
        facts.pop("model", None)  # a tabular agent has no language model
    return text, list(facts.items())
