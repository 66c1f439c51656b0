"""``xpdb report``: the paper's validation figures and numbers for one model, as PNGs and an HTML page.

Everything shown comes from the SQL views (``validation_summary``, ``cluster_summary``,
``xm_validation``, ``xm_cluster_sample``, ``catalog_all``), so the report, the demo's
printed summary and any SQL or ADQL query agree by construction; the comparison of models
on the same held-out stars comes from the test metrics stored in the model registry.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from xpdb.report import figures


@dataclass
class Report:
    out: Path
    index: Path
    figures: dict[str, Path] = field(default_factory=dict)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def build_report(url: str, model_id: int, model_ref: str, out: Path) -> Report:
    """Draw every figure and write ``index.html`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, out / "index.html")
    with psycopg.connect(url) as conn:
        conn.read_only = True
        catalogs = [r[0] for r in conn.execute(
            "SELECT DISTINCT catalog FROM xpdb.validation_summary WHERE model_id = %s ORDER BY 1", (model_id,))]
        for catalog in catalogs:
            for scope, suffix in (("all", "all"), ("g<15", "g15")):
                report.figures[f"Residuals against {catalog}, {figures.SCOPES[scope][1]} (Figures 3, 4, 7, 8)"] = \
                    figures.residual_figure(conn, model_id, catalog, out / f"residuals_{_slug(catalog)}_{suffix}.png",
                                            scope=scope)
        report.figures["Predicted errors against residual sigma per G bin (Figure 5)"] = figures.error_figure(
            conn, model_id, catalogs, out / "errors_vs_sigma.png")
        report.figures["Star clusters (Figure 9)"] = figures.cluster_figure(conn, model_id, out / "clusters.png")
        report.figures["[Fe/H] and G distributions (Figure 12)"] = figures.distributions_figure(
            conn, model_id, out / "distributions.png")
        report.figures["Predicted-error map in the G-[Fe/H] plane (Figure 11)"] = figures.error_map_figure(
            conn, model_id, out / "error_map.png")
        comparison = figures.comparison_figure(conn, model_id, out / "comparison.png")
        if comparison is not None:
            report.figures["Models compared on the same held-out stars (xpdb models compare)"] = comparison
        generated = _generated_spectra(conn, out / "generated_spectra.png")
        if generated is not None:
            report.figures[generated[0]] = generated[1]
        summary = conn.execute(
            "SELECT catalog, cuts, scope, subset, n, bias, sigma, method, median_feh_err FROM xpdb.validation_summary "
            "WHERE model_id = %s AND scope IN ('all', 'g<15') AND g_min IS NULL ORDER BY catalog, scope, subset",
            (model_id,)).fetchall()
        clusters = conn.execute(
            "SELECT cluster, n_members, n_selected, n, n_clipped, feh_mean, feh_sigma, method, feh_ref, feh_paper, "
            "feh_paper_source FROM xpdb.cluster_summary WHERE model_id = %s ORDER BY feh_ref NULLS LAST, cluster",
            (model_id,)).fetchall()
    report.index.write_text(_html(model_ref, report, summary, clusters))
    return report


def _generated_spectra(conn, path: Path) -> tuple[str, Path] | None:
    """Spectra generated along an [M/H] sequence by the newest transformer model, if there is one."""
    from xpdb.models import kinds, registry

    row = conn.execute("SELECT name || ':' || version FROM xpdb.model WHERE kind = 'transformer' "
                       "ORDER BY created_at DESC, model_id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    record = registry.find(conn, row[0])
    model = kinds.get("transformer").load(record, registry.artifact(conn, record.model_id))
    title = f"XP spectra generated along an [M/H] sequence by the transformer {record.ref}"
    return title, figures.generated_sequence_figure(model, path, title=title)


def _fmt(v, digits=3) -> str:
    return "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def _html(model_ref: str, report: Report, summary, clusters) -> str:
    rows = "\n".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in summary)
    crow = "\n".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v, 2))}</td>" for v in r) + "</tr>" for r in clusters)
    figs = "\n".join(f'<h2>{html.escape(title)}</h2>\n<p><a href="{p.name}"><img src="{p.name}" alt="{html.escape(title)}" '
                     f'style="max-width:100%"></a></p>' for title, p in report.figures.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xpdb report: {html.escape(model_ref)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}</style></head><body>
<h1>UA-CSNet validation report: model {html.escape(model_ref)}</h1>
<p>Delta[Fe/H] = [Fe/H]<sub>model</sub> - [Fe/H]<sub>ref</sub>; bias and sigma by a Gaussian fit
(xpdb.validation_summary). All numbers and figures are read from the SQL views of the database.</p>
<h2>Validation summary</h2>
<p>Each catalogue is judged on the stars of its validation selection, as the paper does (section 4.2):
SAGA and PASTEL with the six cuts of section 2.3, surveys with the first three cuts and E(B-V) &lt; 0.5;
scope "all" is every G (the paper's quoted figures), "g&lt;15" the range where FEH_err is recommended.</p>
<table><tr><th>catalogue</th><th>cuts</th><th>scope</th><th>subset</th><th>N</th><th>bias</th><th>sigma</th>
<th>method</th><th>median FEH_err</th></tr>
{rows}
</table>
<h2>Clusters (Gaussian fit with 3-sigma clipping, Figure 9)</h2>
<p>Members with a prediction, those that count (the first three cuts, the cluster's colour cut, membership
probability and prediction flags), those kept by the clipping; the reference value and the published one.</p>
<table><tr><th>cluster</th><th>members</th><th>selected</th><th>N</th><th>clipped</th><th>mean [Fe/H]</th><th>sigma</th>
<th>method</th><th>reference</th><th>published</th><th>published: source</th></tr>
{crow}
</table>
{figs}
</body></html>
"""
