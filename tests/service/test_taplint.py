"""The IVOA validator: STILTS ``taplint`` against the running service reports no errors.

Runs only where ``stilts`` is on PATH (Debian package ``stilts``; ``scripts/bootstrap``
installs it for the test extras); skips with a message otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

# the stages of issue 19: metadata (TMV TME TMS TMC), capabilities (CPV CAP), availability (AVV),
# queries (QGE QPO QAS), UWS and the metadata of query results (MDQ)
STAGES = "TMV TME TMS TMC CPV CAP AVV QGE QPO QAS UWS MDQ"


def run_taplint(url: str, stages: str = STAGES, timeout_s: float = 900) -> tuple[int, int, str]:
    """(errors, warnings, report) of ``stilts taplint`` on the TAP service at ``url``."""
    stilts = shutil.which("stilts")
    if stilts is None:
        pytest.skip("stilts is not installed (apt-get install stilts, or scripts/bootstrap): taplint not run")
    # words without + or -: exactly these stages
    cmd = [stilts, "taplint", f"tapurl={url}/tap", "report=EW", "maxrepeat=1000", "format=text", f"stages={stages}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    report = done.stdout + done.stderr
    totals = re.search(r"Totals:\s+Errors:\s*(\d+);\s+Warnings:\s*(\d+)", report)
    assert totals, f"taplint printed no totals (exit {done.returncode}):\n{report[-4000:]}"
    return int(totals.group(1)), int(totals.group(2)), report


def test_taplint_reports_no_errors(server):
    errors, warnings, report = run_taplint(server)
    examples: dict[str, str] = {}
    counts: dict[str, int] = {}
    for line in report.splitlines():
        if line.startswith("E-"):
            code = line.split(" ", 1)[0].rsplit("-", 1)[0]
            counts[code] = counts.get(code, 0) + 1
            examples.setdefault(code, line)
    summary = "\n".join(f"{counts[c]:5d} x {examples[c]}" for c in sorted(counts, key=counts.get, reverse=True))
    assert errors == 0, f"taplint: {errors} errors, {warnings} warnings, by kind:\n{summary}"
