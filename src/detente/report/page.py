"""The report page: its sections from a loaded folder (:mod:`detente.report.load`), rendered with Jinja.

Self-contained: no network resource at all. CSS and JavaScript are inline,
plots are base64 PNGs (:mod:`detente.report.plots`), and the transcripts
travel as JSON in a ``<script type="application/json">`` block with ``<``,
``>`` and ``&`` written as ``\\u003c`` etc., so model output can never close
the block. The page's script puts model text into the page with
``textContent`` only, never as HTML; every other text goes through Jinja's
autoescaping.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from detente.errors import UserError
from detente.report.load import TRANSCRIPT_BUDGET, Loaded, TranscriptFile, load_folder, load_transcripts
from detente.report.plots import CONTRAST_DASHES, CONTRAST_PANEL, PANELS, curve_png, heatmap_png, panel_keys
from detente.runs import (
    CONTRAST_FILE,
    CROSSPLAY_TRANSCRIPTS,
    MATRIX,
    METRICS,
    TRANSCRIPTS,
    ContrastBar,
    ContrastRecord,
    CrossPlayRecord,
    TranscriptLine,
)

TEMPLATE = "template.html.j2"


class ReportError(UserError):
    """The folder cannot give a report (it does not exist, or holds none of the files)."""


@dataclass
class Section:
    """What one part of the page got: its content, or notes saying why (part of) it is missing."""

    notes: list[str] = field(default_factory=list)


@dataclass
class Curves(Section):
    plots: list[dict[str, str]] = field(default_factory=list)
    """{"title", "png"} with ``png`` base64."""
    iterations: int = 0


@dataclass
class CrossPlaySection(Section):
    heatmap: str | None = None
    table_notes: list[str] = field(default_factory=list)
    """Notes on the per-agent table (``notes`` are on the heatmap)."""
    game: str = ""
    games_per_pair: int | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class ContrastSection(Section):
    plot: str | None = None
    """Base64 PNG of :data:`~detente.report.plots.CONTRAST_PANEL`."""
    plotted: list[str] = field(default_factory=list)
    """The labels of the runs on the plot."""
    figure_notes: list[str] = field(default_factory=list)
    """Notes on the figures and bars (``notes`` are on the plot)."""
    n_rounds: int | None = None
    tft_vs_alld: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    """One row per figure: its name, then its value in each run."""
    bars: list[dict[str, str]] = field(default_factory=list)
    """{"run", "figure", "value", "bar", "met"} per bar of the claim; ``met`` is "met" or "not met"."""


@dataclass
class TranscriptSection(Section):
    files: list[dict[str, Any]] = field(default_factory=list)
    """{"name", "iteration", "label", "games": [prepared game]}, by iteration."""

    @property
    def n_games(self) -> int:
        return sum(len(f["games"]) for f in self.files)


def render_report(run_dir: Path | str) -> str:
    """The HTML page for ``run_dir``; :class:`ReportError` if it is no run or eval folder."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder")
    loaded = load_folder(folder)
    if (not (folder / METRICS).is_file() and not (folder / MATRIX).is_file() and not loaded.transcripts
            and loaded.contrast is None):
        raise ReportError(f"{folder} is neither a run folder nor an eval folder: it has no {METRICS}, "
                          f"no {MATRIX} and no {TRANSCRIPTS}/iter_N.jsonl")
    jinja2 = _need("jinja2")
    _need("matplotlib")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    template = env.from_string(resources.files("detente.report").joinpath(TEMPLATE).read_text())
    transcripts = transcript_section(folder, loaded)
    return template.render(
        title=folder.resolve().name, folder=str(folder), summary=loaded.facts, config_text=loaded.config_text,
        contrast=contrast_section(folder, loaded), curves=curves_section(folder, loaded),
        crossplay=crossplay_section(folder, loaded),
        transcripts=transcripts, transcript_json=script_json({"files": transcripts.files}),
    )


# ---------------------------------------------------------------- training curves
def curves_section(folder: Path, loaded: Loaded | None = None) -> Curves:
    """One plot per :data:`~detente.report.plots.PANELS` entry that ``metrics.jsonl`` has numbers for."""
    loaded = loaded or load_folder(folder)
    section = Curves()
    if not (folder / METRICS).is_file():
        if loaded.contrast is not None:
            runs = ", ".join(f"`detente report {folder / label}`" for label in loaded.contrast.runs)
            section.notes.append(f"A contrast job: each run's own training curves are in its report: {runs}.")
        else:
            section.notes.append(f"No {METRICS} in this folder (an eval folder?): training curves skipped.")
        return section
    if loaded.bad_metrics:
        section.notes.append(f"{loaded.bad_metrics} line(s) of {METRICS} could not be read and were skipped.")
    lines = loaded.metrics
    if not lines:
        section.notes.append(f"{METRICS} holds no iterations yet: training curves skipped.")
        return section
    section.iterations = len(lines)
    x = [line.iteration for line in lines]
    keys = {k for line in lines for k, v in line.values.items() if _number(v) is not None}
    missing = []
    for panel in PANELS:
        series = [(label, [_number(line.values.get(key)) for line in lines])
                  for key, label in panel_keys(panel, keys)]
        if series:
            section.plots.append({"title": panel.title, "png": curve_png(panel, x, series)})
        else:
            missing.append(panel.title)
    if missing:
        section.notes.append(f"Not recorded in this run: {', '.join(missing)}.")
    return section


# ---------------------------------------------------------------- contrast
def contrast_section(folder: Path, loaded: Loaded | None = None) -> ContrastSection | None:
    """A contrast job's runs side by side: cooperation over training on one plot (each run's
    ``metrics.jsonl``), and the figures and bars of ``contrast.json``; None for any other folder."""
    loaded = loaded or load_folder(folder)
    if loaded.contrast is None:
        return None
    section = ContrastSection()
    x = sorted({line.iteration for scan in loaded.contrast.runs.values() if scan for line in scan[0]})
    series, styles = [], []
    for k, (label, scan) in enumerate(loaded.contrast.runs.items()):
        if scan is None:
            section.notes.append(f"{label}: no {label}/{METRICS} yet (not trained): not in the plot.")
            continue
        lines, bad = scan
        if bad:
            section.notes.append(f"{label}: {bad} line(s) of {label}/{METRICS} could not be read, skipped.")
        values = {line.iteration: line.values for line in lines}
        drawn = 0
        for (key, name), dash in zip(CONTRAST_PANEL.series, CONTRAST_DASHES, strict=True):
            ys = [_number(values.get(i, {}).get(key)) for i in x]
            if any(y is not None for y in ys):
                series.append((f"{label}: {name}", ys))
                styles.append((f"C{k}", dash))
                drawn += 1
        if drawn:
            section.plotted.append(label)
        else:
            section.notes.append(f"{label}: no cooperation figures in {label}/{METRICS}: not in the plot.")
    if series:
        section.plot = curve_png(CONTRAST_PANEL, x, series, styles)
    record = loaded.contrast.record
    if record is None:
        why = (f"could not be read ({loaded.contrast.error})" if loaded.contrast.error is not None
               else "is not written yet (the job writes it after the joint cross-play)")
        section.figure_notes.append(f"{CONTRAST_FILE} {why}: figures and bars skipped.")
        return section
    section.n_rounds, section.tft_vs_alld = record.n_rounds, _fmt(record.tft_vs_alld)
    section.columns, section.rows = contrast_table(record)
    section.bars = [{"run": bar.run, "figure": bar.figure, "value": _fmt(bar.value),
                     "bar": _bar(bar, record.tft_vs_alld),
                     "met": "met" if bar.met else "not met"} for bar in record.bars]
    if not record.bars:
        section.figure_notes.append("No bar of the claim applies to these runs (the bars are for runs "
                                    "labelled naive and adalign).")
    return section


def contrast_table(record: ContrastRecord) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted rows: one row per figure, one column per run."""
    labels = list(record.runs)
    keys = list(dict.fromkeys(key for figures in record.runs.values() for key in figures))
    rows = [[key, *(_fmt(record.runs[label].get(key)) for label in labels)] for key in keys]
    return ["figure", *labels], rows


def _bar(bar: ContrastBar, tft_vs_alld: float | None) -> str:
    """``<= 0.20``; the bar on the reward against always-defect, a fraction of tit-for-tat's, says so:
    ``>= 0.85 (0.95 x tft vs alld)``."""
    text = f"{bar.comparison} {bar.threshold:.2f}"
    if bar.figure == "reward_vs_alld" and tft_vs_alld:
        text += f" ({bar.threshold / tft_vs_alld:.2f} \u00d7 tft vs alld)"
    return text


# ---------------------------------------------------------------- cross-play
def crossplay_section(folder: Path, loaded: Loaded | None = None) -> CrossPlaySection:
    """The heatmap and per-agent table of ``matrix.json``."""
    loaded = loaded or load_folder(folder)
    section = CrossPlaySection()
    if loaded.crossplay is None:
        if loaded.crossplay_error is not None:
            note = f"{MATRIX} could not be read ({loaded.crossplay_error}): cross-play skipped."
        else:
            where = ("the contrast job writes it once its runs are trained" if loaded.contrast is not None
                     else "write one with `detente eval --out DIR`")
            note = f"No {MATRIX} in this folder: cross-play heatmap and behaviour table skipped ({where})."
        section.notes.append(note)
        return section
    record = loaded.crossplay
    section.game, section.games_per_pair = record.game, record.games_per_pair
    section.heatmap = heatmap_png(record)
    section.columns, section.rows = agent_table(record)
    if not record.stats.behaviour:
        section.table_notes.append("No behaviour figures for these agents.")
    return section


def agent_table(record: CrossPlayRecord) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted rows: one row per agent, summary figures then behaviour figures."""
    stats, n = record.stats, len(record.agents)
    per_agent: list[tuple[str, list[float | None]]] = [
        ("reward / round, all co-players", list(stats.round_robin)),
        ("self-play welfare", [stats.welfare[i][i] for i in range(n)]),
        ("self-play efficiency", [stats.efficiency[i][i] for i in range(n)]),
        ("invalid rate", list(stats.invalid_rate)),
    ]
    keys: list[str] = []
    for figures in stats.behaviour.values():
        keys += [k for k in figures if k not in keys]
    columns = ["agent", *(label for label, _ in per_agent),
               *(k.removesuffix("_rate").replace("_", " ") for k in keys)]
    rows = []
    for i, agent in enumerate(record.agents):
        figures = stats.behaviour.get(agent, {})
        rows.append([agent, *(_fmt(values[i]) for _, values in per_agent),
                     *(_fmt(figures.get(k)) for k in keys)])
    return columns, rows


# ---------------------------------------------------------------- transcripts
def transcript_section(folder: Path, loaded: Loaded | None = None, budget: int = TRANSCRIPT_BUDGET
                       ) -> TranscriptSection:
    """The transcript files, prepared for viewing: cross-play first, then iterations newest first."""
    if loaded is None or budget != TRANSCRIPT_BUDGET:
        files, notes = load_transcripts(folder, budget)
    else:
        files, notes = loaded.transcripts, loaded.transcript_notes
    section = TranscriptSection(notes=list(notes))
    if not files:
        section.notes.append(f"No {TRANSCRIPTS}/iter_N.jsonl or {CROSSPLAY_TRANSCRIPTS} in this folder "
                             "(tabular runs write none): transcript viewer skipped.")
        return section
    section.files = [_file(f) for f in files]
    if not section.n_games:
        section.notes.append("The transcript files hold no games.")
    return section


def _file(transcripts: TranscriptFile) -> dict[str, Any]:
    return {"name": transcripts.name, "iteration": transcripts.iteration, "label": transcripts.label,
            "games": [prepare_game(game) for game in transcripts.games]}


def prepare_game(game: TranscriptLine) -> dict[str, Any]:
    """One game as the viewer shows it: per round, per seat, the decisions and what preceded them.

    Seat s's chat alternates what it was shown (user messages) and what it wrote (assistant
    messages); its k-th reply is its k-th decision, so the shown text before a reply goes with that
    decision (``seen``). When the counts differ the chat is kept whole under ``chats`` instead.
    """
    n_rounds = max([len(game.round_rewards), *(d.round + 1 for d in game.decisions)])
    rewards = [list(r) for r in game.round_rewards]
    rounds = [{"round": t, "rewards": rewards[t] if t < len(rewards) else [None, None], "seats": [[], []]}
              for t in range(n_rounds)]
    for d in game.decisions:
        if d.seat in (0, 1):
            rounds[d.round]["seats"][d.seat].append({"raw": d.raw, "valid": d.valid, "seen": []})
    whole: dict[str, list[dict[str, str]]] = {}
    after: dict[str, list[str]] = {}
    for seat, messages in game.chats.items():
        if seat not in (0, 1):
            continue
        mine = [entry for r in rounds for entry in r["seats"][seat]]
        if sum(m.get("role") == "assistant" for m in messages) != len(mine):
            whole[str(seat)] = messages
            continue
        pending: list[str] = []
        replies = iter(mine)
        for message in messages:
            if message.get("role") == "assistant":
                next(replies)["seen"] = pending
                pending = []
            else:
                pending.append(message.get("content", ""))
        if pending:
            after[str(seat)] = pending
    players = [*game.players[:2], *(f"seat {s}" for s in range(len(game.players), 2))]
    totals = [sum(r["rewards"][s] or 0.0 for r in rounds) for s in (0, 1)]
    return {
        "iteration": game.iteration, "slot": game.slot, "seed": game.seed, "players": players,
        "trained": [s for s in game.trained_seats if s in (0, 1)],
        "totals": totals, "rounds": rounds, "after": after, "chats": whole,
    }


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


# ---------------------------------------------------------------- helpers
def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.2f}"


def _need(module: str) -> Any:
    """Import a dependency of the ``report`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ReportError(f"detente report needs {module}: pip install 'detente[report]'") from None
