"""Server-side plots of the web pages: matplotlib (Agg, object API) drawn as SVG to put inline in the HTML.

Nothing is fetched by the browser: the SVG is part of the page. Text stays text
(``svg.fonttype = none``), which keeps a plot small and quick to draw. Figures are made
with :class:`matplotlib.figure.Figure`, not ``pyplot``, and each handler thread keeps its
own, so threads drawing at the same time share no figure.

What a star page costs is mostly matplotlib's axes, ticks and their text, so: fixed
margins (``bbox_inches="tight"`` draws a figure twice), about five ticks per axis, keys in
the page's captions instead of legends, figures reused with only their data swapped, and
the spectrum and its 60 features in one figure sharing the wavelength axis.
"""

from __future__ import annotations

import io
import threading

import numpy as np
from markupsafe import Markup, escape

_setup = threading.Lock()
_ready = False
_local = threading.local()  # per thread: one reusable figure per kind of plot
# pyplot (used by xpdb.report.figures) keeps global state: one figure of the report at a time
PYPLOT_LOCK = threading.Lock()


def _new_figure(width: float, height: float, margins: tuple, rows: int):
    global _ready
    import matplotlib

    with _setup:
        if not _ready:
            matplotlib.use("Agg", force=False)
            matplotlib.rcParams["svg.fonttype"] = "none"
            _ready = True
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(width, height), dpi=72)
    left, right, bottom, top = margins
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top, hspace=0.08)
    axes = [fig.add_subplot(rows, 1, 1)]
    for i in range(2, rows + 1):
        axes.append(fig.add_subplot(rows, 1, i, sharex=axes[0]))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(4))
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    return fig, axes


def _axes(kind: str, width: float, height: float, margins=(0.11, 0.97, 0.17, 0.96), rows: int = 1):
    """This thread's figure and axes for ``kind``, emptied of the last plot's data.

    Making a Figure, its Axes and their tick objects costs about as much as drawing them, so
    each handler thread keeps one figure per kind of plot and only swaps the data: the axes,
    ticks and labels are reused. Threads never share one (matplotlib objects are not thread-safe).
    """
    import matplotlib

    figures = getattr(_local, "figures", None)
    if figures is None:
        figures = _local.figures = {}
    matplotlib.rcParams["text.usetex"] = False  # GaiaXPy's plotter turns TeX on when imported
    if kind not in figures:
        figures[kind] = _new_figure(width, height, margins, rows)
    fig, axes = figures[kind]
    for ax in axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
            artist.remove()
        ax.relim()
        ax.set_autoscale_on(True)
        if ax.yaxis_inverted():
            ax.invert_yaxis()
    return fig, axes


def _svg(fig, label: str) -> Markup:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]
    text = text.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    return Markup(text)  # drawn by matplotlib, which escapes its text; the label is escaped above


def _scale(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    positive = finite[finite > 0]
    if not positive.size:
        return 1.0
    return float(10.0 ** np.floor(np.log10(np.median(positive))))


def spectrum_svg(wavelength, flux, flux_error, *, label: str, features: tuple | None = None) -> Markup:
    """The calibrated spectrum with its 1-sigma error band; with ``features`` (wavelength, flux, error), the
    60 normalised features below it on the same wavelength axis."""
    wl, f, e = (np.asarray(a, dtype=float) for a in (wavelength, flux, flux_error))
    scale = _scale(f)
    if features is None:
        fig, (ax,) = _axes("spectrum", 7.5, 3.2)
    else:
        fig, (ax, below) = _axes("spectrum+features", 7.5, 5.4, margins=(0.11, 0.97, 0.1, 0.98), rows=2)
    ax.fill_between(wl, (f - e) / scale, (f + e) / scale, color="#9ecae1", lw=0)
    ax.plot(wl, f / scale, color="#08519c", lw=1.2)
    ax.set_ylabel(f"flux [{scale:.0e} W nm⁻¹ m⁻²]")
    ax.set_xlim(wl.min(), wl.max())
    bottom = ax
    if features is not None:
        fw, ff, fe = (np.asarray(a, dtype=float) for a in features)
        below.errorbar(fw, ff, yerr=fe, fmt="o", ms=2.5, color="#54278f", ecolor="#bcbddc", elinewidth=1)
        below.set_ylabel("60 features (normalised)")
        bottom = below
    bottom.set_xlabel("wavelength [nm]")
    return _svg(fig, label)


def cmd_svg(field: tuple, members: tuple | None, star: tuple, *, label: str) -> Markup:
    """A colour-magnitude diagram: the neighbourhood (grey), cluster members (orange) and the star (red star).

    The key is in the page's caption (a legend costs as much to lay out as an axis)."""
    fig, (ax,) = _axes("cmd", 4.4, 4.2, margins=(0.16, 0.97, 0.12, 0.97))
    x, y = (np.asarray(a, dtype=float) for a in field)
    ax.scatter(x, y, s=4, color="0.65", lw=0)
    if members is not None and len(members[0]):
        mx, my = (np.asarray(a, dtype=float) for a in members)
        ax.scatter(mx, my, s=6, color="#fd8d3c", lw=0)
    if star[0] is not None and star[1] is not None:
        ax.scatter([star[0]], [star[1]], s=60, marker="*", color="#cb181d", zorder=5)
    ax.invert_yaxis()
    ax.set_xlabel("BP − RP [mag]")
    ax.set_ylabel("G [mag]")
    return _svg(fig, label)
