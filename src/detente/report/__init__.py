"""``detente report DIR``: one self-contained HTML page for a run folder or an eval folder.

What the page shows, each part from one file of the folder (read through
:mod:`detente.runs`) and skipped with a note when that file is missing or
unreadable (at least one must be there):

* ``metrics.jsonl`` (run folders) — training curves, one plot per quantity
  the run recorded (:data:`~detente.report.plots.PANELS`): reward per round of
  the learner and the co-player, the learner's (and a co-learner's)
  behaviour, the memory-1 table of tabular runs, KL, entropy, invalid-output
  rate, loss, gradient norm;
* ``matrix.json`` (run and eval folders) — the cross-play heatmap of mean
  reward per round with its 95% CI, and a per-agent table: round-robin
  average, self-play welfare and efficiency, invalid rate and behaviour;
* ``transcripts/iter_N.jsonl`` (llm runs) and ``transcripts/crossplay.jsonl``
  (``detente eval --out``) — a transcript viewer: pick a file and a game,
  see each round's decisions (messages, proposals), what each seat was
  shown and the rewards, the two seats side by side; a search box filters
  the games by text;
* a contrast job's folder (``detente train`` with no argument: a contrast
  config, ``<label>/`` run folders, ``contrast.json``) — first the contrast:
  each run's cooperation and mutual cooperation over training on one plot
  (from ``<label>/metrics.jsonl``), the figures of ``contrast.json`` side by
  side and each bar of the claim, met or not, with tit-for-tat's reward
  against always-defect as the scale; then the joint cross-play as above. A
  job still training shows what it has written so far;
* ``config.yaml`` — shown as written.

Modules: :mod:`~detente.report.load` (reading), :mod:`~detente.report.plots`
(pictures), :mod:`~detente.report.page` (sections and the page).
"""

from __future__ import annotations

from pathlib import Path

from detente.report.page import (
    ReportError,
    contrast_section,
    crossplay_section,
    curves_section,
    prepare_game,
    render_report,
    transcript_section,
)
from detente.runs import REPORT, write_page


def write_report(run_dir: Path | str, out: Path | str | None = None) -> Path:
    """Render the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``); return its path."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT if out is None else Path(out)
    write_page(path, render_report(run_dir))
    return path


__all__ = ["ReportError", "contrast_section", "crossplay_section", "curves_section", "prepare_game",
           "render_report", "transcript_section", "write_report"]
