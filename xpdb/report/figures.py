"""The paper's validation figures, drawn from the SQL views (one source of truth).

Each function reads what it plots from the views - ``xm_validation`` and
``validation_summary`` (Figures 3, 4, 7, 8 and 5), ``xm_cluster_sample`` and
``cluster_summary`` (Figure 9), ``catalog_all`` (Figures 11 and 12) - and writes a PNG.
Every figure's points are the stars its statistics are computed from: a residual figure
plots the stars of its catalogue's validation selection (``in_scope``) in its scope (all G,
or G < 15), a cluster panel the members that count (``in_sample``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg

FEH_LABEL = "[Fe/H]"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # GaiaXPy's plotter switches text.usetex on at import; these figures need no TeX installation.
    plt.rcParams["text.usetex"] = False
    return plt


def _fetch(conn: psycopg.Connection, sql: str, params: tuple) -> dict[str, np.ndarray]:
    cur = conn.execute(sql, params)
    names = [d.name for d in cur.description]
    rows = cur.fetchall()
    return {n: np.array([np.nan if r[i] is None else r[i] for r in rows], dtype=float) for i, n in enumerate(names)}


SCOPES = {"all": ("true", "all G"), "g<15": ("phot_g_mean_mag < 15", "G < 15")}


def _summary(conn, model_id: int, catalog: str, scope: str, subset: str) -> dict | None:
    row = conn.execute("SELECT n, bias, sigma, method, selection, cuts FROM xpdb.validation_summary "
                       "WHERE model_id = %s AND catalog = %s AND scope = %s AND subset = %s",
                       (model_id, catalog, scope, subset)).fetchone()
    return dict(zip(("n", "bias", "sigma", "method", "selection", "cuts"), row)) if row else None


def scope_points(conn, model_id: int, catalog: str, scope: str) -> dict[str, np.ndarray]:
    """The stars behind ``validation_summary``'s numbers for (model, catalogue, scope)."""
    where = SCOPES[scope][0]
    return _fetch(conn, "SELECT feh, feh_ref, delta_feh, bp_rp0, phot_g_mean_mag, ebv, m_g FROM xpdb.xm_validation "
                        f"WHERE model_id = %s AND catalog = %s AND in_scope AND delta_feh IS NOT NULL AND {where} "
                        "ORDER BY source_id", (model_id, catalog))


def _binned_trend(ax, x, d, edges):
    """Mean and +-1 sigma of the residuals in bins of x (the red and blue lines of Figures 3-8)."""
    centres, means, sigmas = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (x >= lo) & (x < hi) & np.isfinite(d)
        if m.sum() >= 5:
            centres.append(0.5 * (lo + hi))
            means.append(np.mean(d[m]))
            sigmas.append(np.std(d[m]))
    if centres:
        means, sigmas = np.array(means), np.array(sigmas)
        ax.plot(centres, means, color="red", lw=1.5)
        ax.plot(centres, means + sigmas, color="blue", lw=1)
        ax.plot(centres, means - sigmas, color="blue", lw=1)


def residual_figure(conn, model_id: int, catalog: str, path: Path, scope: str = "all") -> Path:
    """Figures 3/4/7/8: histogram of Delta[Fe/H], model vs reference, Delta vs [Fe/H], (BP-RP)0, G, E(B-V),
    for the stars of the catalogue's validation selection in ``scope`` ('all' or 'g<15')."""
    plt = _plt()
    d = scope_points(conn, model_id, catalog, scope)
    stats = _summary(conn, model_id, catalog, scope, "all")
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    ax = axes[0, 0]
    if stats and stats["n"]:
        ax.hist(d["delta_feh"], bins=40, color="0.6")
        ax.set_title(f"N={stats['n']}  bias={stats['bias']:+.3f}  sigma={stats['sigma']:.3f} ({stats['method']})",
                     fontsize=9)
    ax.set_xlabel(f"Delta{FEH_LABEL} (model - {catalog})")
    ax = axes[0, 1]
    ax.scatter(d["feh_ref"], d["feh"], s=4, c=d["bp_rp0"], cmap="viridis")
    lims = [np.nanmin([d["feh_ref"].min(initial=-4), -4]), 1]
    ax.plot(lims, lims, color="red")
    ax.set_xlabel(f"{FEH_LABEL} {catalog}")
    ax.set_ylabel(f"{FEH_LABEL} model")
    for ax, key, label, edges in (
        (axes[0, 2], "feh_ref", f"{FEH_LABEL} {catalog}", np.arange(-4.5, 1.01, 0.5)),
        (axes[1, 0], "bp_rp0", "(BP-RP)_0", np.arange(0.7, 1.91, 0.1)),
        (axes[1, 1], "phot_g_mean_mag", "G", np.arange(5, 18.1, 1)),
        (axes[1, 2], "ebv", "E(B-V)", np.arange(0, 0.51, 0.05)),
    ):
        ax.scatter(d[key], d["delta_feh"], s=3, color="0.5")
        _binned_trend(ax, d[key], d["delta_feh"], edges)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel(label)
        ax.set_ylabel(f"Delta{FEH_LABEL}")
    cuts = f"; {stats['cuts']}" if stats and stats.get("cuts") else ""
    fig.suptitle(f"Model vs {catalog}, {SCOPES[scope][1]}{cuts}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def error_figure(conn, model_id: int, catalogs: list[str], path: Path) -> Path:
    """Figure 5: median predicted error against the residual sigma, per G bin, per catalogue."""
    plt = _plt()
    fig, axes = plt.subplots(1, max(1, len(catalogs)), figsize=(5 * max(1, len(catalogs)), 4.5), squeeze=False)
    for ax, catalog in zip(axes[0], catalogs):
        rows = conn.execute("SELECT g_min, g_max, n, sigma, median_feh_err FROM xpdb.validation_summary "
                            "WHERE model_id = %s AND catalog = %s AND scope = 'g-bin' AND n >= 10 ORDER BY g_min",
                            (model_id, catalog)).fetchall()
        if rows:
            sig = np.array([r[3] for r in rows], float)
            err = np.array([r[4] for r in rows], float)
            sc = ax.scatter(sig, err, c=[0.5 * (r[0] + r[1]) for r in rows], cmap="plasma", s=[10 + r[2] / 3 for r in rows])
            for r, s_, e_ in zip(rows, sig, err):
                ax.annotate(f"G {r[0]:g}-{r[1]:g}", (s_, e_), fontsize=7, xytext=(3, 3), textcoords="offset points")
            top = max(np.nanmax(sig), np.nanmax(err)) * 1.2
            ax.plot([0, top], [0, top], color="k", lw=0.8)
            ax.plot([0, top], [0, top * 1.5], color="k", lw=0.5, ls=":")
            ax.plot([0, top], [0, top / 1.5], color="k", lw=0.5, ls=":")
            fig.colorbar(sc, ax=ax, label="G")
        ax.set_xlabel("sigma of Delta[Fe/H] (Gaussian fit)")
        ax.set_ylabel("median predicted FEH_err")
        ax.set_title(catalog)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def cluster_figure(conn, model_id: int, path: Path) -> Path:
    """Figure 9: each cluster's [Fe/H] distribution (the members that count), the Gaussian fitted with
    3-sigma clipping, the reference value and the published value (``cluster_summary.feh_paper``)."""
    plt = _plt()
    clusters = conn.execute("SELECT cluster, n, n_clipped, feh_mean, feh_sigma, feh_ref, feh_paper, feh_paper_source, "
                            "method, cuts, bp_rp0_min FROM xpdb.cluster_summary WHERE model_id = %s "
                            "ORDER BY feh_ref NULLS LAST, cluster", (model_id,)).fetchall()
    fig, axes = plt.subplots(1, max(1, len(clusters)), figsize=(3.4 * max(1, len(clusters)), 3.9), squeeze=False)
    for ax, (name, n, clipped, mean, sigma, ref, paper, paper_source, method, cuts, colour) in zip(axes[0], clusters):
        feh = _fetch(conn, "SELECT feh FROM xpdb.xm_cluster_sample WHERE model_id = %s AND cluster = %s AND in_sample "
                           "ORDER BY source_id", (model_id, name))["feh"]
        centre = mean if mean is not None else (ref if ref is not None else 0.0)
        lo, hi = centre - 1.5, centre + 1.5
        ax.hist(np.clip(feh, lo, hi), bins=np.linspace(lo, hi, 31), color="0.6")
        if sigma and sigma > 0:
            x = np.linspace(lo, hi, 200)
            width = (hi - lo) / 30
            ax.plot(x, n * width / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((x - mean) / sigma) ** 2), color="red",
                    label=f"fit {mean:+.2f} +- {sigma:.2f}")
            for edge in (mean - 3 * sigma, mean + 3 * sigma):
                ax.axvline(edge, color="red", lw=0.5, ls=":")
        if ref is not None:
            ax.axvline(ref, color="blue", ls="--", label=f"reference {ref:+.2f}")
        if paper is not None:
            ax.axvline(paper, color="darkorange", lw=2, label=f"published {paper:+.2f}")
        title = name if mean is None else f"{name}\n{mean:+.2f} +- {sigma:.2f} (N={n}, {clipped} clipped)"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(FEH_LABEL)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left")
        note = cuts + (f", (BP-RP)0 > {colour:g}" if colour is not None else "")
        ax.text(0.98, 0.98, note, transform=ax.transAxes, fontsize=5.5, ha="right", va="top", wrap=True)
    sources = sorted({r[7] for r in clusters if r[7]})
    if sources:
        fig.suptitle("published values: " + "; ".join(sources), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def distributions_figure(conn, model_id: int, path: Path) -> Path:
    """Figure 12: the [Fe/H] and G distributions of the catalogue."""
    plt = _plt()
    d = _fetch(conn, "SELECT feh, phot_g_mean_mag FROM xpdb.catalog_all WHERE model_id = %s AND feh IS NOT NULL",
               (model_id,))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].hist(d["feh"], bins=np.arange(-4.5, 1.01, 0.1), color="0.4")
    axes[0].set_yscale("log")
    axes[0].set_xlabel(FEH_LABEL)
    axes[0].set_ylabel("N")
    axes[1].hist(d["phot_g_mean_mag"][np.isfinite(d["phot_g_mean_mag"])], bins=np.arange(5, 19.01, 0.25), color="0.4")
    axes[1].set_xlabel("G")
    fig.suptitle(f"{len(d['feh']):,} stars", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def error_map_figure(conn, model_id: int, path: Path) -> Path:
    """Figure 11: the median predicted error in the G - [Fe/H] plane."""
    plt = _plt()
    d = _fetch(conn, "SELECT feh, feh_err, phot_g_mean_mag FROM xpdb.catalog_all WHERE model_id = %s "
                     "AND feh IS NOT NULL", (model_id,))
    gx = np.arange(5, 18.01, 0.5)
    fy = np.arange(-4.5, 1.01, 0.25)
    grid = np.full((len(fy) - 1, len(gx) - 1), np.nan)
    ix = np.digitize(d["phot_g_mean_mag"], gx) - 1
    iy = np.digitize(d["feh"], fy) - 1
    for i in range(len(fy) - 1):
        for j in range(len(gx) - 1):
            m = (iy == i) & (ix == j)
            if m.sum() >= 3:
                grid[i, j] = np.median(d["feh_err"][m])
    fig, ax = plt.subplots(figsize=(7, 5))
    mesh = ax.pcolormesh(gx, fy, grid, cmap="magma_r", shading="flat")
    fig.colorbar(mesh, ax=ax, label="median FEH_err [dex]")
    ax.set_xlabel("G")
    ax.set_ylabel(FEH_LABEL)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


COMPARISON_SCORES = (("overall", "all"), ("metal_poor", "[Fe/H] <= -1.5"), ("vmp", "[Fe/H] <= -2"))


def comparable_models(conn, model_id: int) -> list[tuple[str, str, dict]]:
    """(ref, kind, test metrics) of every model tested on the same stars as ``model_id`` (same test-set hash)."""
    rows = conn.execute("""
        SELECT m.name || ':' || m.version, m.kind, m.metrics -> 'test' FROM xpdb.model m,
               (SELECT metrics -> 'test' ->> 'set_hash' AS h FROM xpdb.model WHERE model_id = %s) t
        WHERE t.h IS NOT NULL AND m.metrics -> 'test' ->> 'set_hash' = t.h ORDER BY m.model_id""",
                        (model_id,)).fetchall()
    return [(ref, kind, test) for ref, kind, test in rows]


def comparison_figure(conn, model_id: int, path: Path) -> Path | None:
    """Models side by side on the same held-out stars: sigma overall, metal-poor and VMP (G < 15),
    and the predicted error over the residual sigma per G bin."""
    models = comparable_models(conn, model_id)
    if len(models) < 2:
        return None
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(models)
    for i, (ref, kind, test) in enumerate(models):
        m = test["g_lt_15"]
        values = [(m.get(key) or {}).get("sigma") or np.nan for key, _ in COMPARISON_SCORES]
        x = np.arange(len(COMPARISON_SCORES)) + (i - (len(models) - 1) / 2) * width
        bars = ax.bar(x, values, width, label=f"{ref} ({kind})")
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
        by_g = [b for b in m["by_g"] if b.get("residual_sigma")]
        ax2.plot([0.5 * (b["g_min"] + b["g_max"]) for b in by_g],
                 [b["median_predicted_error"] / b["residual_sigma"] for b in by_g], "o-", label=ref)
    ax.set_xticks(np.arange(len(COMPARISON_SCORES)), [label for _, label in COMPARISON_SCORES])
    ax.set_ylabel("sigma of Delta[Fe/H] (Gaussian fit) [dex]")
    ax.set_title(f"the same {models[0][2]['g_lt_15']['overall']['n']} held-out stars ({models[0][2]['catalog']}, G < 15)")
    ax.legend(fontsize=7)
    ax2.axhspan(1 / 1.3, 1.3, color="0.9")
    ax2.axhline(1.0, color="k", lw=0.8)
    ax2.set_xlabel("G")
    ax2.set_ylabel("median FEH_err / residual sigma")
    ax2.set_title("error calibration per G bin (shaded: within x1.3)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FEH_SEQUENCE = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.3)
SEQUENCE_STARS = (("red giant", 4500.0, 2.0), ("main-sequence dwarf", 5800.0, 4.4))


def generated_sequence_figure(model, path: Path, *, title: str = "", m_h=FEH_SEQUENCE, stars=SEQUENCE_STARS,
                              alpha_m: float = 0.0, ebv: float = 0.0) -> Path:
    """XP spectra generated by a transformer model along an [M/H] sequence (the seed's Figure 2, bottom).

    ``model`` is a loaded ``FoundationModel``. Top: G-normalised spectra with the predicted 1-sigma
    band; bottom: each spectrum over the [M/H] = 0 one, where the metal lines and bands show.
    """
    plt = _plt()
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(2, len(stars), figsize=(6.5 * len(stars), 7), sharex=True, squeeze=False)
    for col, (name, teff, logg) in enumerate(stars):
        wl, flux, err = model.generate(teff=np.full(len(m_h), teff), logg=logg, m_h=np.asarray(m_h, float),
                                       alpha_m=alpha_m, ebv=ebv)
        solar = model.generate(teff=teff, logg=logg, m_h=0.0, alpha_m=alpha_m, ebv=ebv)[1][0]
        scale = 1e11  # W m-2 nm-1 at G = 0 -> 1e-11 units
        for i, value in enumerate(m_h):
            colour = cmap(i / max(1, len(m_h) - 1))
            axes[0, col].plot(wl, flux[i] * scale, color=colour, lw=1, label=f"[M/H] = {value:+.1f}")
            axes[0, col].fill_between(wl, (flux[i] - err[i]) * scale, (flux[i] + err[i]) * scale, color=colour,
                                      alpha=0.15, lw=0)
            axes[1, col].plot(wl, flux[i] / solar, color=colour, lw=1)
        axes[0, col].set_title(f"{name}: Teff = {teff:.0f} K, log g = {logg:.1f}, [alpha/M] = {alpha_m:+.1f}, "
                               f"E(B-V) = {ebv:g}", fontsize=9)
        axes[0, col].set_ylabel("flux at G = 0 [1e-11 W m-2 nm-1]")
        axes[1, col].set_ylabel("flux / flux([M/H] = 0)")
        axes[1, col].set_xlabel("wavelength [nm]")
        axes[1, col].axhline(1.0, color="k", lw=0.6)
        axes[0, col].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
