"""Server-side plots of the web pages: matplotlib (Agg, object API) drawn as SVG to put inline in the HTML.

Nothing is fetched by the browser: the SVG is part of the page. Text stays text
(``svg.fonttype = none``), which keeps a spectrum plot small (about 30 kB) and quick to draw.
Figures are made with :class:`matplotlib.figure.Figure`, not ``pyplot``, so that handler
threads drawing at the same time share no global figure state.
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


def _axes(kind: str, width: float, height: float, margins=(0.11, 0.97, 0.17, 0.96)):
    """This thread's figure and axes for ``kind``, emptied of the last plot's data.

    Making a Figure, its Axes and their tick objects costs about as much as drawing them, so
    each handler thread keeps one figure per kind of plot and only swaps the data: the axes,
    ticks and labels are reused. Threads never share one (matplotlib objects are not thread-safe).
    """
    figures = getattr(_local, "figures", None)
    if figures is None:
        figures = _local.figures = {}
    if kind not in figures:
        fig = _figure(width, height, margins)
        figures[kind] = (fig, fig.add_subplot())
    fig, ax = figures[kind]
    import matplotlib

    matplotlib.rcParams["text.usetex"] = False  # GaiaXPy's plotter turns TeX on when imported
    for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
        artist.remove()
    ax.relim()
    ax.set_autoscale_on(True)
    if ax.yaxis_inverted():
        ax.invert_yaxis()
    return fig, ax


def _figure(width: float, height: float, margins=(0.11, 0.97, 0.17, 0.96)):
    global _ready
    import matplotlib

    with _setup:
        if not _ready:
            matplotlib.use("Agg", force=False)
            matplotlib.rcParams["svg.fonttype"] = "none"
            _ready = True
    # GaiaXPy's plotter turns TeX on when imported; these figures need no TeX installation
    matplotlib.rcParams["text.usetex"] = False
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=72)
    # fixed margins: bbox_inches="tight" would draw every figure twice
    left, right, bottom, top = margins
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top)
    return fig


def _few_ticks(ax) -> None:
    """At most about five labelled ticks per axis: tick objects and their text layout are most of a plot's cost."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(4))


def _svg(fig, label: str) -> Markup:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]
    text = text.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    return Markup(text)  # drawn by matplotlib, which escapes its text; the label is escaped above


def _scale(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    if not finite.size or not finite.max() > 0:
        return 1.0
    return float(10.0 ** np.floor(np.log10(np.median(finite[finite > 0]) if (finite > 0).any() else 1.0)))


def spectrum_svg(wavelength, flux, flux_error, *, title: str) -> Markup:
    """The calibrated spectrum with its 1-sigma error band."""
    wl, f, e = (np.asarray(a, dtype=float) for a in (wavelength, flux, flux_error))
    scale = _scale(f)
    fig, ax = _axes("spectrum", 7.5, 3.2)
    _few_ticks(ax)
    ax.fill_between(wl, (f - e) / scale, (f + e) / scale, color="#9ecae1", lw=0)
    ax.plot(wl, f / scale, color="#08519c", lw=1.2)
    ax.set_xlabel("wavelength [nm]")
    ax.set_ylabel(f"flux [{scale:.0e} W nm⁻¹ m⁻²]")
    ax.set_xlim(wl.min(), wl.max())
    return _svg(fig, f"XP spectrum: {title}")


def features_svg(wavelength, flux, flux_error, *, title: str) -> Markup:
    """The 60 normalised features with their errors."""
    wl, f, e = (np.asarray(a, dtype=float) for a in (wavelength, flux, flux_error))
    fig, ax = _axes("features", 7.5, 2.6, margins=(0.11, 0.97, 0.2, 0.96))
    _few_ticks(ax)
    ax.errorbar(wl, f, yerr=e, fmt="o", ms=2.5, color="#54278f", ecolor="#bcbddc", elinewidth=1)
    ax.set_xlabel("wavelength [nm] (bins equal in ln λ)")
    ax.set_ylabel("normalised flux")
    return _svg(fig, f"model features: {title}")


def cmd_svg(field: tuple, members: tuple | None, star: tuple, *, title: str, member_label: str = "") -> Markup:
    """A colour-magnitude diagram: the neighbourhood (grey), cluster members (orange) and the star (red star).

    The key is in the page's caption (a legend costs as much to lay out as an axis)."""
    fig, ax = _axes("cmd", 4.4, 4.2, margins=(0.16, 0.97, 0.12, 0.97))
    _few_ticks(ax)
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
    return _svg(fig, f"colour-magnitude diagram: {title}")
