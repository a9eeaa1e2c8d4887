"""The report's pictures: training curves, a contrast's runs on one plot and the cross-play heatmap,
as base64 PNGs.

matplotlib's Agg canvas is used directly (no pyplot, so no global backend state).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detente.runs import CrossPlayRecord

SMOOTH_ABOVE = 40
"""Curves with more points than this get a moving average drawn over the faint raw line."""


@dataclass(frozen=True)
class Panel:
    """One training-curve plot: the ``metrics.jsonl`` keys it draws, each with its legend label."""

    title: str
    series: tuple[tuple[str, str], ...]
    """(key, label); a key ending in ``*`` is a prefix: every key starting with it, labelled by the rest."""
    ylabel: str
    unit_range: bool = False
    """Fix the y axis to [0, 1] (rates and probabilities)."""


BEHAVIOUR = (("cooperation_rate", "cooperation"), ("mutual_cooperation_rate", "mutual cooperation"),
             ("retaliation_rate", "retaliation P(D | other D)"), ("forgiveness_rate", "forgiveness"))
PANELS = (
    Panel("Reward per round", (("reward/learner", "learner"), ("reward/coplayer", "co-player")),
          "reward / round"),
    Panel("Behaviour of the learner", tuple((f"behaviour/{k}", label) for k, label in BEHAVIOUR), "rate",
          unit_range=True),
    Panel("Behaviour of the co-learner", tuple((f"coplayer/behaviour/{k}", label) for k, label in BEHAVIOUR),
          "rate", unit_range=True),
    Panel("Memory-1 policy: P(cooperate | state)", (("policy/coop_prob_*", ""),), "probability",
          unit_range=True),
    Panel("KL to the reference model (k3)", (("loss/kl", "KL"),), "KL"),
    Panel("Policy entropy", (("loss/entropy", "entropy"),), "nats"),
    Panel("Invalid-output rate", (("data/invalid_rate", "invalid-output rate"),), "rate", unit_range=True),
    Panel("Loss", (("loss/policy", "loss"),), "loss"),
    Panel("Gradient norm (before clipping)", (("loss/grad_norm", "gradient norm"),), "norm"),
)

CONTRAST_PANEL = Panel("Cooperation over training, run by run",
                       (("behaviour/cooperation_rate", "cooperation"),
                        ("behaviour/mutual_cooperation_rate", "mutual cooperation")), "rate", unit_range=True)
"""A contrast job's runs on one plot: each run one colour, cooperation solid, mutual cooperation dashed."""
CONTRAST_DASHES = ("-", "--")
"""The line style of each of :data:`CONTRAST_PANEL`'s series."""


def panel_keys(panel: Panel, keys: set[str]) -> list[tuple[str, str]]:
    """(key, label) pairs of ``panel`` present in ``keys``, prefixes expanded."""
    out = []
    for key, label in panel.series:
        if key.endswith("*"):
            prefix = key[:-1]
            out += [(k, k.removeprefix(prefix)) for k in sorted(keys) if k.startswith(prefix)]
        elif key in keys:
            out.append((key, label))
    return out


def curve_png(panel: Panel, x: Sequence[float], lines: Sequence[tuple[str, list[float | None]]],
              styles: Sequence[tuple[str, str]] | None = None) -> str:
    """``lines``: (label, y per x; None: no point); ``styles``: (colour, line style) of each, by default
    colour ``C<k>`` and solid."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    figure = _figure(6.0, 3.4, layout=None)
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.9)  # constrained layout: 2x slower
    ax = figure.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for k, (label, ys) in enumerate(lines):
        colour, dash = styles[k] if styles else (f"C{k}", "-")
        xs = np.asarray(x, dtype=float)
        y = np.array([math.nan if v is None else v for v in ys], dtype=float)
        ok = np.isfinite(y)
        smooth = ok.sum() > SMOOTH_ABOVE
        ax.plot(xs, y, color=colour, ls=dash, lw=1.0 if smooth else 1.6, alpha=0.3 if smooth else 1.0,
                marker="o" if ok.sum() <= 3 else None, label=None if smooth else label)
        if smooth:
            w = max(ok.sum() // 20, 2)
            mean = np.convolve(y[ok], np.ones(w) / w, mode="valid")
            ax.plot(xs[ok][w - 1:], mean, color=colour, ls=dash, lw=1.8, label=f"{label} (mean of {w})")
    ax.set_title(panel.title, fontsize=11)
    ax.set_xlabel("iteration")
    ax.set_ylabel(panel.ylabel)
    if panel.unit_range:
        ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    if len(lines) > 1 or lines[0][0].lower() not in panel.title.lower():
        ax.legend(fontsize=8, loc="best", ncols=2 if len(lines) > 3 else 1)
    return _png(figure)


def heatmap_png(record: CrossPlayRecord) -> str:
    """Mean reward per round of the row agent against each column agent, with its 95% half-width."""
    import numpy as np

    agents, n = record.agents, len(record.agents)
    M = np.array(record.mean_reward, dtype=float)  # (n, n)
    side = min(max(4.5, 0.7 * n + 2.2), 9.0)
    figure = _figure(side + 1.4, side)
    ax = figure.add_subplot()
    image = ax.imshow(M, cmap="RdYlGn")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="mean reward per round of the row agent")
    labels = [_mpl_text(short_name(a)) for a in agents]
    ax.set_xticks(range(n), labels, rotation=35, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("co-player (column)")
    ax.set_ylabel("agent (row)")
    font = max(6.0, min(10.0, 80 / n))
    for i in range(n):
        for j in range(n):
            if not np.isfinite(M[i, j]):
                continue
            text = f"{M[i, j]:.2f}" + (f"\n±{record.ci95[i][j]:.2f}" if n <= 10 else "")
            r, g, b, _ = image.cmap(image.norm(M[i, j]))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=font, color=ink)
    ax.set_title("Cross-play: mean reward per round of the row agent", fontsize=11)
    return _png(figure)


def short_name(agent: str) -> str:
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
