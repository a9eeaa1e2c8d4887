"""``detente report DIR``: one self-contained HTML page for a run folder or an eval folder.

What the page shows, each part from one file of the folder and skipped with a
note when that file is missing or unreadable (at least one must be there):

* ``metrics.jsonl`` (run folders) — training curves, one plot per quantity
  that the run recorded (:data:`PANELS`): reward per round of the learner and
  the co-player, cooperation / retaliation / forgiveness, the memory-1 table
  of tabular runs, KL, entropy, invalid-output rate, loss, gradient norm;
* ``matrix.json`` (run and eval folders, :meth:`CrossPlay.to_json
  <detente.eval.tournament.CrossPlay.to_json>`) — the cross-play heatmap of
  mean reward per round with its 95% CI, and a per-agent table: round-robin
  average, self-play welfare and efficiency, invalid rate and the behaviour
  statistics of ``stats.behaviour``;
* ``transcripts/iter_N.jsonl`` (llm runs) and ``transcripts/crossplay.jsonl``
  (``detente eval --out``) — a transcript viewer: pick a file and a game,
  see each round's decisions (messages, proposals), what each seat was
  shown and the rewards, the two seats side by side; a search box filters
  the games by text;
* ``config.yaml`` — shown as written.

Self-contained: no network resource at all. CSS and JavaScript are inline,
plots are base64 PNGs drawn by matplotlib's Agg canvas (no pyplot, so no
global backend state), and the transcripts travel as JSON in a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` written
as ``\\u003c`` etc., so model output can never close the block. The page's
script puts model text into the page with ``textContent`` only, never as HTML;
every other text goes through Jinja's autoescaping.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from detente.runs import CONFIG, CROSSPLAY_TRANSCRIPTS, MATRIX, METRICS, TRANSCRIPTS, write_atomic

REPORT = "report.html"
TEMPLATE = "report_template.html.j2"
TRANSCRIPT_BUDGET = 20_000_000
"""Bytes of transcript files embedded at most; the newest iterations are kept, older ones left out."""
SMOOTH_ABOVE = 40
"""Curves with more points than this get a moving average drawn over the faint raw line."""


class ReportError(ValueError):
    """The folder cannot give a report (it does not exist, or holds none of the files)."""


@dataclass(frozen=True)
class Panel:
    """One training-curve plot: the ``metrics.jsonl`` keys it draws, each with its legend label."""

    title: str
    series: tuple[tuple[str, str], ...]
    """(key, label); a key ending in ``*`` is a prefix: every key starting with it, labelled by the rest."""
    ylabel: str
    unit_range: bool = False
    """Fix the y axis to [0, 1] (rates and probabilities)."""


PANELS = (
    Panel("Reward per round", (("reward/learner", "learner"), ("reward/coplayer", "co-player"),
                               ("reward_mean", "learner")), "reward / round"),
    Panel("Behaviour of the learner", (("cooperation_rate", "cooperation"),
                                       ("mutual_cooperation_rate", "mutual cooperation"),
                                       ("retaliation_rate", "retaliation P(D | other D)"),
                                       ("forgiveness_rate", "forgiveness")), "rate", unit_range=True),
    Panel("Memory-1 policy: P(cooperate | state)", (("coop_prob_*", ""),), "probability", unit_range=True),
    Panel("KL to the reference model (k3)", (("kl", "KL"),), "KL"),
    Panel("Policy entropy", (("entropy", "entropy"),), "nats"),
    Panel("Invalid-output rate", (("invalid_rate", "invalid-output rate"),), "rate", unit_range=True),
    Panel("Loss", (("loss", "loss"),), "loss"),
    Panel("Gradient norm (before clipping)", (("grad_norm", "gradient norm"),), "norm"),
)
TWINS = {"reward_mean": "reward/learner"}
"""A key drawn only when its twin is absent (llm runs log the learner's reward under both names)."""


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
    games_per_pair: Any = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class TranscriptSection(Section):
    files: list[dict[str, Any]] = field(default_factory=list)
    """{"name", "iteration", "games": [prepared game]}, by iteration."""

    @property
    def n_games(self) -> int:
        return sum(len(f["games"]) for f in self.files)


# ---------------------------------------------------------------- entry points
def write_report(run_dir: Path | str, out: Path | str | None = None) -> Path:
    """Render the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``); return its path."""
    run_dir = Path(run_dir)
    out = run_dir / REPORT if out is None else Path(out)
    write_atomic(out, render_report(run_dir))
    return out


def render_report(run_dir: Path | str) -> str:
    """The HTML page for ``run_dir``; :class:`ReportError` if it is no run or eval folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a folder")
    found = [p for p in (run_dir / METRICS, run_dir / MATRIX) if p.is_file()]
    found += _transcript_files(run_dir)
    if not found:
        raise ReportError(f"{run_dir} is neither a run folder nor an eval folder: it has no {METRICS}, "
                          f"no {MATRIX} and no {TRANSCRIPTS}/iter_N.jsonl")
    jinja2 = _need("jinja2")
    _need("matplotlib")
    config_text, summary = _config(run_dir)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    template = env.from_string(resources.files("detente.eval").joinpath(TEMPLATE).read_text())
    transcripts = transcript_section(run_dir)
    return template.render(
        title=run_dir.resolve().name, folder=str(run_dir), summary=summary, config_text=config_text,
        curves=curves_section(run_dir), crossplay=crossplay_section(run_dir), transcripts=transcripts,
        transcript_json=script_json({"files": transcripts.files}),
    )


def add_report_command(sub: argparse._SubParsersAction) -> None:
    """Register ``detente report DIR [--out FILE]`` on the ``detente`` sub-command parsers."""
    report = sub.add_parser("report", help="write a self-contained report.html for a run or eval folder")
    report.add_argument("dir", metavar="DIR",
                        help="run folder (metrics.jsonl, matrix.json, transcripts/) "
                        "or eval folder (matrix.json)")
    report.add_argument("--out", metavar="FILE", help="where to write the page (default DIR/report.html)")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> None:
    """Handler of ``detente report``: write the page, say where; a folder with no part is a UsageError."""
    from rich.console import Console

    try:
        path = write_report(args.dir, args.out)
    except ReportError as error:
        from detente.cli import UsageError  # main() shows a UsageError as one line and exits with 2

        raise UsageError(str(error)) from None
    console = Console(highlight=False)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", markup=False)


# ---------------------------------------------------------------- training curves
def curves_section(run_dir: Path) -> Curves:
    """One plot per :data:`PANELS` entry that ``metrics.jsonl`` has numbers for."""
    section = Curves()
    path = run_dir / METRICS
    if not path.is_file():
        section.notes.append(f"No {METRICS} in this folder (an eval folder?): training curves skipped.")
        return section
    records, bad = _read_jsonl(path)
    if bad:
        section.notes.append(f"{bad} line(s) of {METRICS} are not JSON objects and were skipped.")
    if not records:
        section.notes.append(f"{METRICS} holds no iterations yet: training curves skipped.")
        return section
    section.iterations = len(records)
    x = [r.get("iteration", i) for i, r in enumerate(records)]
    keys = {k for r in records for k, v in r.items() if _number(v) is not None}
    missing = []
    for panel in PANELS:
        lines = [(label, [_number(r.get(key)) for r in records]) for key, label in _panel_keys(panel, keys)]
        if lines:
            section.plots.append({"title": panel.title, "png": _curve_png(panel, x, lines)})
        else:
            missing.append(panel.title)
    if missing:
        section.notes.append(f"Not recorded in this run: {', '.join(missing)}.")
    return section


def _panel_keys(panel: Panel, keys: set[str]) -> list[tuple[str, str]]:
    """(key, label) pairs of ``panel`` present in ``keys``, prefixes expanded, twins dropped."""
    out = []
    for key, label in panel.series:
        if key.endswith("*"):
            prefix = key[:-1]
            out += [(k, k.removeprefix(prefix)) for k in sorted(keys) if k.startswith(prefix)]
        elif key in keys and TWINS.get(key) not in keys:
            out.append((key, label))
    return out


def _curve_png(panel: Panel, x: Sequence[float], lines: Sequence[tuple[str, list[float | None]]]) -> str:
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    figure = _figure(6.0, 3.4, layout=None)
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.9)  # constrained layout: 2x slower
    ax = figure.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for k, (label, ys) in enumerate(lines):
        colour = f"C{k}"
        xs = np.asarray(x, dtype=float)
        y = np.array([math.nan if v is None else v for v in ys], dtype=float)
        ok = np.isfinite(y)
        smooth = ok.sum() > SMOOTH_ABOVE
        ax.plot(xs, y, color=colour, lw=1.0 if smooth else 1.6, alpha=0.3 if smooth else 1.0,
                marker="o" if ok.sum() <= 3 else None, label=None if smooth else label)
        if smooth:
            w = max(ok.sum() // 20, 2)
            mean = np.convolve(y[ok], np.ones(w) / w, mode="valid")
            ax.plot(xs[ok][w - 1:], mean, color=colour, lw=1.8, label=f"{label} (mean of {w})")
    ax.set_title(panel.title, fontsize=11)
    ax.set_xlabel("iteration")
    ax.set_ylabel(panel.ylabel)
    if panel.unit_range:
        ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    if len(lines) > 1 or lines[0][0].lower() not in panel.title.lower():
        ax.legend(fontsize=8, loc="best", ncols=2 if len(lines) > 3 else 1)
    return _png(figure)


# ---------------------------------------------------------------- cross-play
def crossplay_section(run_dir: Path) -> CrossPlaySection:
    """The heatmap and per-agent table of ``matrix.json``."""
    section = CrossPlaySection()
    path = run_dir / MATRIX
    if not path.is_file():
        section.notes.append(f"No {MATRIX} in this folder: cross-play heatmap and behaviour table skipped "
                             "(write one with `detente eval --out DIR`).")
        return section
    try:
        matrix = json.loads(path.read_text())
        agents, mean = _check_matrix(matrix)
    except (json.JSONDecodeError, ValueError) as error:
        section.notes.append(f"{MATRIX} could not be read ({error}): cross-play skipped.")
        return section
    section.game = str(matrix.get("game", ""))
    section.games_per_pair = matrix.get("games_per_pair")
    ci = matrix.get("ci95")
    if not _is_square(ci, len(agents)):
        ci = None
        section.notes.append(f"{MATRIX} has no usable ci95: the heatmap shows means only.")
    section.heatmap = _heatmap_png(agents, mean, ci)
    stats = matrix.get("stats") if isinstance(matrix.get("stats"), dict) else {}
    section.columns, section.rows = _agent_table(agents, stats)
    if not stats.get("behaviour"):
        section.table_notes.append("No behaviour statistics for these agents (stats.behaviour is empty: "
                             "they are computed for matrix games).")
    return section


def _check_matrix(matrix: Any) -> tuple[list[str], list[list[float]]]:
    if not isinstance(matrix, dict):
        raise ValueError("not a JSON object")
    agents, mean = matrix.get("agents"), matrix.get("mean_reward")
    if not isinstance(agents, list) or not agents:
        raise ValueError("no agents list")
    if not _is_square(mean, len(agents)):
        raise ValueError(f"mean_reward is not a {len(agents)} x {len(agents)} table of numbers")
    return [str(a) for a in agents], mean


def _is_square(table: Any, n: int) -> bool:
    return (isinstance(table, list) and len(table) == n
            and all(isinstance(row, list) and len(row) == n for row in table)
            and all(_number(v) is not None or v is None for row in table for v in row))


def _heatmap_png(agents: Sequence[str], mean: Sequence[Sequence[float]],
                 ci: Sequence[Sequence[float]] | None) -> str:
    import numpy as np

    n = len(agents)
    M = np.array([[math.nan if v is None else v for v in row] for row in mean], dtype=float)  # (n, n)
    side = min(max(4.5, 0.7 * n + 2.2), 9.0)
    figure = _figure(side + 1.4, side)
    ax = figure.add_subplot()
    image = ax.imshow(M, cmap="RdYlGn")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="mean reward per round of the row agent")
    labels = [_mpl_text(_short(a)) for a in agents]
    ax.set_xticks(range(n), labels, rotation=35, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("co-player (column)")
    ax.set_ylabel("agent (row)")
    font = max(6.0, min(10.0, 80 / n))
    for i in range(n):
        for j in range(n):
            if not np.isfinite(M[i, j]):
                continue
            text = f"{M[i, j]:.2f}"
            if ci is not None and n <= 10 and _number(ci[i][j]) is not None:
                text += f"\n±{ci[i][j]:.2f}"
            r, g, b, _ = image.cmap(image.norm(M[i, j]))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=font, color=ink)
    ax.set_title("Cross-play: mean reward per round of the row agent", fontsize=11)
    return _png(figure)


def _agent_table(agents: Sequence[str], stats: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted rows: one row per agent, summary figures then behaviour rates."""
    n = len(agents)
    per_agent: list[tuple[str, list[Any]]] = []
    if isinstance(stats.get("round_robin"), list) and len(stats["round_robin"]) == n:
        per_agent.append(("reward / round, all co-players", stats["round_robin"]))
    for key, label in (("welfare", "self-play welfare"), ("efficiency", "self-play efficiency")):
        if _is_square(stats.get(key), n):
            per_agent.append((label, [stats[key][i][i] for i in range(n)]))
    if isinstance(stats.get("invalid_rate"), list) and len(stats["invalid_rate"]) == n:
        per_agent.append(("invalid rate", stats["invalid_rate"]))
    behaviour = stats.get("behaviour") if isinstance(stats.get("behaviour"), dict) else {}
    keys: list[str] = []
    for figures in behaviour.values():
        if isinstance(figures, dict):
            keys += [k for k in figures if k not in keys]
    columns = ["agent", *(label for label, _ in per_agent),
               *(k.removesuffix("_rate").replace("_", " ") for k in keys)]
    rows = []
    for i, agent in enumerate(agents):
        figures = behaviour.get(agent) if isinstance(behaviour.get(agent), dict) else {}
        rows.append([agent, *(_fmt(values[i]) for _, values in per_agent),
                     *(_fmt(figures.get(k)) for k in keys)])
    return columns, rows


# ---------------------------------------------------------------- transcripts
def transcript_section(run_dir: Path, budget: int = TRANSCRIPT_BUDGET) -> TranscriptSection:
    """The transcript files, prepared for viewing: cross-play first, then iterations newest first, up to
    ``budget`` bytes."""
    section = TranscriptSection()
    files = _transcript_files(run_dir)
    if not files:
        section.notes.append(f"No {TRANSCRIPTS}/iter_N.jsonl or {CROSSPLAY_TRANSCRIPTS} in this folder "
                             "(tabular runs write none): transcript viewer skipped.")
        return section
    kept, used = [], 0
    for path in reversed(files):
        size = path.stat().st_size
        if kept and used + size > budget:
            break
        kept.append(path)
        used += size
    if len(kept) < len(files):
        section.notes.append(f"Transcripts are large: the newest {len(kept)} of {len(files)} iteration files "
                             f"are embedded ({used / 1e6:.0f} MB), older ones left out.")
    bad = 0
    for path in reversed(kept):
        records, wrong = _read_jsonl(path)
        bad += wrong
        games = [prepare_game(r) for r in records]
        iteration = _iteration(path)
        section.files.append({"name": path.name, "iteration": iteration,
                              "label": "cross-play" if iteration is None else f"iteration {iteration}",
                              "games": [g for g in games if g is not None]})
        bad += games.count(None)
    if bad:
        section.notes.append(f"{bad} transcript line(s) could not be read and were skipped.")
    if not section.n_games:
        section.notes.append("The transcript files hold no games.")
    return section


def prepare_game(record: dict[str, Any]) -> dict[str, Any] | None:
    """One transcript line as the viewer shows it: per round, per seat, the decisions and what preceded them.

    Seat s's chat alternates what it was shown (user messages) and what it
    wrote (assistant messages); its k-th reply is its k-th decision, so the
    shown text before a reply goes with that decision (``seen``). When the
    counts differ the chat is kept whole under ``chats`` instead. None if the
    line is not a game record.
    """
    decisions = record.get("decisions")
    if not isinstance(decisions, list) or not all(isinstance(d, dict) for d in decisions):
        return None
    rewards = record.get("round_rewards") if isinstance(record.get("round_rewards"), list) else []
    n_rounds = max([len(rewards), *(_int(d.get("round")) + 1 for d in decisions)])
    rounds = [{"round": t, "rewards": _pair(rewards[t] if t < len(rewards) else None), "seats": [[], []]}
              for t in range(n_rounds)]
    for d in decisions:
        seat = _int(d.get("seat"))
        if seat in (0, 1):
            rounds[_int(d.get("round"))]["seats"][seat].append(
                {"raw": str(d.get("raw", "")), "valid": d.get("valid") is not False, "seen": []})
    chats = record.get("chats") if isinstance(record.get("chats"), dict) else {}
    whole: dict[str, list[dict[str, str]]] = {}
    after: dict[str, list[str]] = {}
    for seat_key, messages in chats.items():
        if not isinstance(messages, list):
            continue
        messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                    for m in messages if isinstance(m, dict)]
        seat = _int(seat_key)
        if seat not in (0, 1):
            continue
        mine = [entry for r in rounds for entry in r["seats"][seat]]
        if sum(m["role"] == "assistant" for m in messages) != len(mine):
            whole[str(seat_key)] = messages
            continue
        pending: list[str] = []
        replies = iter(mine)
        for message in messages:
            if message["role"] == "assistant":
                next(replies)["seen"] = pending
                pending = []
            else:
                pending.append(message["content"])
        if pending:
            after[str(seat_key)] = pending
    players = record.get("players") if isinstance(record.get("players"), list) else []
    totals = [sum(r["rewards"][s] or 0.0 for r in rounds) for s in (0, 1)]
    return {
        "iteration": record.get("iteration"), "slot": record.get("slot"), "seed": record.get("seed"),
        "players": [str(p) for p in players][:2] + [f"seat {s}" for s in range(len(players), 2)],
        "trained": [s for s in record.get("trained_seats", []) if s in (0, 1)]
        if isinstance(record.get("trained_seats"), list) else [],
        "totals": totals, "rounds": rounds, "after": after, "chats": whole,
    }


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _transcript_files(run_dir: Path) -> list[Path]:
    folder = run_dir / TRANSCRIPTS
    if not folder.is_dir():
        return []
    iterations = sorted((p for p in folder.glob("iter_*.jsonl") if _iteration(p) is not None), key=_iteration)
    crossplay = run_dir / CROSSPLAY_TRANSCRIPTS
    return iterations + ([crossplay] if crossplay.is_file() else [])


def _iteration(path: Path) -> int | None:
    match = re.fullmatch(r"iter_(\d+)\.jsonl", path.name)
    return int(match.group(1)) if match else None


def _pair(rewards: Any) -> list[float | None]:
    if not isinstance(rewards, list | tuple) or len(rewards) != 2:
        return [None, None]
    return [_number(v) for v in rewards]


def _int(value: Any) -> int:
    """A round or seat number: a non-negative int, or its decimal string (JSON object keys); else 0."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# ---------------------------------------------------------------- config and helpers
def _config(run_dir: Path) -> tuple[str | None, list[tuple[str, str]]]:
    """config.yaml's text and a few (label, value) facts from it for the page header."""
    path = run_dir / CONFIG
    if not path.is_file():
        return None, []
    text = path.read_text()
    import yaml

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return text, []
    if not isinstance(config, dict):
        return text, []
    facts: dict[str, str] = {}
    for label, keys in (("run", ("name",)), ("game", ("game", "name")),
                        ("algorithm", ("credit", "algorithm")), ("agent", ("agent", "kind")),
                        ("model", ("agent", "model")), ("co-player", ("coplayer",)),
                        ("iterations", ("train", "iterations")), ("seed", ("seed",))):
        value: Any = config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            facts[label] = str(value)
    if facts.get("agent") == "tabular":
        facts.pop("model", None)  # a tabular agent has no language model
    return text, list(facts.items())


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON-object lines of ``path`` and how many lines were not one."""
    records, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.2f}"


def _short(agent: str) -> str:
    """A plot label: ``run:/long/path/name@3`` -> ``run:name@3``."""
    if agent.startswith("run:"):
        path, at, iteration = agent.removeprefix("run:").partition("@")
        return f"run:{Path(path).name or path}{at}{iteration}"
    return agent


def _mpl_text(text: str) -> str:
    """Text matplotlib draws literally: a ``$`` would start math mode."""
    return text.replace("$", r"\$")


def _figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    """A matplotlib figure on its own Agg canvas: no pyplot, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _need(module: str) -> Any:
    """Import a dependency of the ``report`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ReportError(f"detente report needs {module}: pip install 'detente[report]'") from None
