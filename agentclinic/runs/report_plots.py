"""Matplotlib plots for the HTML report, as PNG data URLs (Agg canvas, no pyplot state).

Each function takes the runs' ``RunStats`` and returns ``(title, data_url)`` or None when the
runs hold nothing to plot.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from agentclinic.runs.report import Rate, RunStats, axis_union
from agentclinic.runs.report_images import png_data_url

Plot = tuple[str, str]
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _encode(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return png_data_url(buffer.getvalue())


def _errors(rates: Sequence[Rate | None]) -> np.ndarray:
    """Asymmetric error bars (2 x n) from each rate's Wilson interval; zero where there is none."""
    lower, upper = [], []
    for rate in rates:
        if rate is None or not rate.n:
            lower.append(0.0)
            upper.append(0.0)
        else:
            lo, hi = rate.ci
            lower.append(max(0.0, rate.value - lo))
            upper.append(max(0.0, hi - rate.value))
    return np.array([lower, upper])


def _grouped_bars(ax, groups: list[str], stats: Sequence[RunStats], rates_of, with_ci: bool = True) -> None:
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(stats))
    for i, s in enumerate(stats):
        rates = [rates_of(s, g) for g in groups]
        values = [r.value if r is not None and r.n else 0.0 for r in rates]
        # the edge keeps a zero bar visible as a coloured line on the axis
        ax.bar(x + (i - (len(stats) - 1) / 2) * width, values, width, label=s.name, color=_colour(i),
               edgecolor=_colour(i), linewidth=1.5, yerr=_errors(rates) if with_ci else None, capsize=2,
               error_kw={"elinewidth": 0.7, "alpha": 0.5, "ecolor": "#333333"})
    ax.set_xticks(x, groups, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)


def _accuracy_bars(title: str, stats: Sequence[RunStats], groups: list[str], width: float, height: float,
                   of) -> Plot:
    fig = _figure(width, height)
    ax = fig.add_subplot()
    _grouped_bars(ax, groups, stats, of)
    ax.set_ylabel("accuracy (95% CI)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return title, _encode(fig)


def accuracy_by_specialty(stats: Sequence[RunStats]) -> Plot | None:
    groups = sorted({g for s in stats for g in s.by_specialty})
    if not groups:
        return None
    return _accuracy_bars("Accuracy by specialty", stats, groups,
                          max(6.0, 0.45 * len(groups) * max(1, len(stats)) ** 0.5 + 2), 3.8,
                          lambda s, g: s.by_specialty.get(g))


def accuracy_by_bias(stats: Sequence[RunStats]) -> Plot | None:
    groups: list[str] = []
    for s in stats:
        groups += [g for g in s.by_bias if g not in groups]
    if groups in ([], ["none"]):
        return None
    return _accuracy_bars("Accuracy by bias", stats, groups, max(5.0, 0.6 * len(groups) + 3), 3.4,
                          lambda s, g: s.by_bias.get(g))


def cost_accuracy(stats: Sequence[RunStats]) -> Plot | None:
    """Accuracy against mean cost per run, with the frontier of runs no other run beats on both."""
    points = [(s, s.mean_cost, s.accuracy) for s in stats if s.mean_cost is not None and s.accuracy.n]
    if not points:
        return None
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot()
    for s, cost, rate in points:
        ax.errorbar([cost], [rate.value], yerr=_errors([rate]), fmt="o", color=_colour(stats.index(s)),
                    capsize=4, label=s.name)
        ax.annotate(s.name, (cost, rate.value), textcoords="offset points", xytext=(6, 6), fontsize=8)
    frontier, best = [], -1.0
    for _, cost, rate in sorted(points, key=lambda p: (p[1], -p[2].value)):
        if rate.value > best:
            frontier.append((cost, rate.value))
            best = rate.value
    if len(frontier) > 1:
        xs, ys = zip(*frontier)
        ax.plot(xs, ys, color="grey", linestyle="--", linewidth=1, label="frontier", zorder=0)
    ax.set_xlabel("mean cost per episode (USD)")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0, right=max(c for _, c, _ in points) * 1.25 + 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return "Accuracy against cost", _encode(fig)


def _coverage_axis(stats: Sequence[RunStats]) -> str | None:
    names = [n for n in axis_union(stats) if "coverage" in n.lower()]
    return names[0] if names else None


def _histograms(stats: Sequence[RunStats], values_of, bins, xlabel: str, title: str,
                integer: bool = False) -> Plot | None:
    data = [(i, s, values_of(s)) for i, s in enumerate(stats)]
    if not any(v for _, _, v in data):
        return None
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    for i, s, values in data:
        if values:
            ax.hist(values, bins=bins, histtype="step", linewidth=1.8, color=_colour(i), label=s.name)
            ax.hist(values, bins=bins, alpha=0.15, color=_colour(i))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("episodes")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if integer:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return title, _encode(fig)


def coverage_histogram(stats: Sequence[RunStats]) -> Plot | None:
    name = _coverage_axis(stats)
    if name is None:
        return None
    return _histograms(stats, lambda s: s.axis_values.get(name, []), np.linspace(0, 1, 11), name,
                       f"Distribution of {name}")


def turns_histogram(stats: Sequence[RunStats]) -> Plot | None:
    top = max((max(s.turns) for s in stats if s.turns), default=0)
    return _histograms(stats, lambda s: s.turns, np.arange(0.5, top + 1.5, 1), "turns", "Turns per episode",
                       integer=True)


def axes_bars(stats: Sequence[RunStats]) -> Plot | None:
    names = axis_union(stats)
    if any(s.composite.n for s in stats):
        names = names + ["composite"]
    if not names:
        return None
    fig = _figure(max(6.0, 0.55 * len(names) * max(1, len(stats)) ** 0.5 + 2), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    width = 0.8 / max(1, len(stats))
    for i, s in enumerate(stats):
        means = [(s.composite if n == "composite" else s.axes.get(n)) for n in names]
        ax.bar(x + (i - (len(stats) - 1) / 2) * width, [m.mean if m and m.mean is not None else 0 for m in means],
               width, color=_colour(i), edgecolor=_colour(i), linewidth=1.5, label=s.name)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return "Scoring axes per run (mean)", _encode(fig)


def all_plots(stats: Sequence[RunStats]) -> list[Plot]:
    makers = (accuracy_by_specialty, cost_accuracy, accuracy_by_bias, coverage_histogram, turns_histogram, axes_bars)
    return [plot for plot in (make(stats) for make in makers) if plot is not None]


__all__ = ["all_plots", "accuracy_by_specialty", "accuracy_by_bias", "cost_accuracy", "coverage_histogram",
           "turns_histogram", "axes_bars"]
