"""The contrast of a contrast job (the main job): each trained agent's figures from one joint cross-play,
and the bars the project's claim sets for naive RL and Advantage Alignment on the IPD.

Every figure comes from the cross-play record (:class:`~detente.runs.CrossPlayRecord`) of the trained
agents against each other, themselves and a field of scripted strategies:

* ``self_play_cooperation``, ``self_play_mutual_cooperation``: over the agent's self-play games;
* ``retaliation`` = P(defect | the other defected last round), over its games against everyone else;
* ``reward_self_play``, ``reward_vs_<opponent>``: its mean reward per round in those cells.

``tft_vs_alld`` is tit-for-tat's reward per round against always-defect in the same game, (N - 1) / N
for N rounds: the scale of the bar on the reward against always-defect.
"""

from __future__ import annotations

from detente.runs import ContrastBar, ContrastRecord, CrossPlayRecord, Figures

BARS = [
    ("naive", "self_play_cooperation", "<=", 0.20),
    ("adalign", "self_play_mutual_cooperation", ">=", 0.60),
    ("adalign", "retaliation", ">=", 0.80),
    ("adalign", "reward_vs_alld", ">=", 0.95),  # times tft_vs_alld
]
"""(label, figure, comparison, threshold) of each bar; the last threshold is a fraction of
``tft_vs_alld``. The bars apply to a contrast whose runs are labelled naive and adalign."""


def contrast_record(record: CrossPlayRecord, agents: dict[str, str], n_rounds: int) -> ContrastRecord:
    """The contrast of the trained ``agents`` (label -> agent name in ``record``)."""
    stats = record.stats
    figures = {}
    for label, agent in agents.items():
        i = record.index(agent)
        own, others = stats.self_play.get(agent, {}), stats.versus_others.get(agent, {})
        figures[label] = {
            "self_play_cooperation": own.get("cooperation_rate"),
            "self_play_mutual_cooperation": own.get("mutual_cooperation_rate"),
            "retaliation": others.get("retaliation_rate"),
            "reward_self_play": record.mean_reward[i][i],
            **{f"reward_vs_{_short(record.agents[j], agents)}": record.mean_reward[i][j]
               for j in range(len(record.agents)) if j != i},
        }
    tft_vs_alld = None
    if {"tft", "alld"} <= set(record.agents):
        tft_vs_alld = record.mean_reward[record.index("tft")][record.index("alld")]
    return ContrastRecord(runs=figures, n_rounds=n_rounds, tft_vs_alld=tft_vs_alld,
                          bars=bars(figures, tft_vs_alld))


def bars(figures: dict[str, Figures], tft_vs_alld: float | None) -> list[ContrastBar]:
    """Each bar of :data:`BARS` that applies, with its value, threshold and whether it is met."""
    out = []
    for label, key, comparison, threshold in BARS:
        if label not in figures or key not in figures[label]:
            continue
        if key == "reward_vs_alld":
            if tft_vs_alld is None:
                continue
            threshold = threshold * tft_vs_alld
        value = figures[label][key]
        met = value is not None and (value <= threshold if comparison == "<=" else value >= threshold)
        out.append(ContrastBar(run=label, figure=key, comparison=comparison, threshold=threshold,
                               value=value, met=met))
    return out


def _short(agent: str, trained: dict[str, str]) -> str:
    """A column's name in the figures: a trained agent's label, else the agent's own name."""
    for label, name in trained.items():
        if name == agent:
            return label
    return agent
