"""Charts: matplotlib figures as inline SVG for the dashboard, and text bars for the terminal."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

# Colours of the dashboard (layers, run status); one place so the page and the charts agree.
LAYER_COLOURS = {"bronze": "#b07d48", "silver": "#8c9aa8", "gold": "#d4a017"}
OK, BAD, MUTED, ACCENT = "#2e7d5b", "#c62828", "#9aa5b1", "#3d6fb6"
_RC: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays <text>: small files, readable and searchable in the page
    "text.parse_math": False,  # song titles with '$' are text, not TeX
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}


def _svg(fig: Any) -> str:
    """The figure as an <svg> element (no XML prologue), ready to inline in HTML."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # Each figure gets its own id prefix so that clip paths of several inline SVGs never collide.
    prefix = f"f{id(fig):x}"
    return re.sub(r'(id="|url\(#|href="#)([^"()]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib
    from matplotlib.figure import Figure

    params: Any = matplotlib.rcParams  # typed with a Literal of every key; ours are plain strings
    params.update(_RC)
    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def _finish_runs_axis(ax: Any, labels: Sequence[str], ylabel: str, title: str, legend: bool) -> None:
    """Run labels on x (bars keep a sane width with few runs), legend under the plot, never over the bars."""
    ax.set_xticks(range(len(labels)), list(labels), rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set_xlim(-0.6, max(len(labels), 6) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    if legend:
        ax.legend(frameon=False, fontsize=8, ncols=4, loc="upper left", bbox_to_anchor=(0, -0.22 if len(labels) > 6 else -0.12))


def bar_chart(labels: Sequence[Any], values: Sequence[float], title: str, ylabel: str = "",
              colour: str = ACCENT, horizontal: bool = False, width: float = 6.0, height: float = 2.6) -> str:
    """One series of bars (vertical, or horizontal for long labels such as song titles)."""
    fig, ax = _figure(width, height)
    names = [str(x) for x in labels]
    if horizontal:
        ax.barh(range(len(values)), values, color=colour)
        ax.set_yticks(range(len(values)), [n if len(n) <= 40 else n[:39] + "…" for n in names])
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        ax.bar(range(len(values)), values, color=colour)
        ax.set_xticks(range(len(values)), names)
        ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    return _svg(fig)


def stacked_bars(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, ylabel: str,
                 colours: dict[str, str] | None = None, failed: Sequence[bool] = (), width: float = 7.0,
                 height: float = 2.8) -> str:
    """Stacked bars per label (e.g. seconds per layer per run); `failed` bars get a red outline and label."""
    fig, ax = _figure(width, height)
    x = list(range(len(labels)))
    bottom = [0.0] * len(labels)
    for i, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, f"C{i}")
        ax.bar(x, values, bottom=bottom, label=name, color=colour, edgecolor="white", linewidth=0.5)
        bottom = [b + float(v) for b, v in zip(bottom, values, strict=True)]
    for i, bad in enumerate(failed):
        if bad:
            ax.bar([i], [max(bottom[i], max(bottom or [1]) * 0.05)], fill=False, edgecolor=BAD, linewidth=2, hatch="//")
            ax.annotate("failed", (i, bottom[i]), ha="center", va="bottom", color=BAD, fontweight="bold")
    _finish_runs_axis(ax, labels, ylabel, title, bool(series))
    return _svg(fig)


def grouped_bars(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, ylabel: str,
                 colours: dict[str, str] | None = None, width: float = 7.0, height: float = 2.8) -> str:
    """Bars side by side per label (e.g. rows in / loaded / quarantined per run)."""
    fig, ax = _figure(width, height)
    n = max(1, len(series))
    step = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [j - 0.4 + step * (i + 0.5) for j in range(len(labels))]
        ax.bar(xs, values, width=step, label=name, color=(colours or {}).get(name, f"C{i}"))
    _finish_runs_axis(ax, labels, ylabel, title, bool(series))
    return _svg(fig)


# ------------------------------------------------------------------------------------- terminal
BLOCKS = " ▏▎▍▌▋▊▉█"


def text_bar(value: float, maximum: float, width: int = 30) -> str:
    """A horizontal bar of Unicode blocks, `width` characters at `maximum` (eighths of a cell)."""
    if maximum <= 0 or value <= 0:
        return ""
    eighths = round(width * 8 * min(value, maximum) / maximum)
    full, rest = divmod(eighths, 8)
    return "█" * full + (BLOCKS[rest] if rest else "")


def with_bars(rows: list[dict[str, Any]], value: str, width: int = 30) -> list[dict[str, Any]]:
    """Rows with a `bar` column drawn from the numeric column `value` (scaled to the largest)."""
    top = max((float(r[value] or 0) for r in rows), default=0.0)
    return [{**r, "bar": text_bar(float(r[value] or 0), top, width)} for r in rows]
