"""Calibration throughput: xpdb.xp.calibrate vs gaiaxpy.calibrate on the same 2,000 real spectra.

Two cases, each timed for both in the same run:
- the chunk as it is (no correlations: diagonal errors);
- the chunk given valid full correlation matrices (random off-diagonal terms of a few
  per cent), so both propagate the full 55x55 covariance.

    python bench/calibrate.py [--gaiaxpy-rows 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._timing import best_of  # noqa: E402
from tests.xp.reference import gaiaxpy_frame_from_flat  # noqa: E402

from xpdb.xp.calibrate import calibrate  # noqa: E402
from xpdb.xp.inputs import to_batch  # noqa: E402

CHUNK = ROOT.parent / "shared" / "data" / "real" / "xp_chunk" / "xp_continuous_combined_chunk0.fits"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaiaxpy-rows", type=int, default=2000, help="rows given to GaiaXPy (it is slow)")
    args = parser.parse_args()
    if not CHUNK.exists():
        sys.exit(f"needs the real chunk {CHUNK} (ships beside the project as ../shared)")
    import gaiaxpy

    for label, correlations in (("no correlations (diagonal errors)", "none"),
                                ("full covariance (valid random correlations)", "random")):
        frame = gaiaxpy_frame_from_flat(CHUNK, correlations=correlations)
        # Parsed once: both sides are timed on in-memory data. Without correlations xpdb gets the
        # file as it is (diagonal errors); GaiaXPy needs explicit zero correlations for the same result.
        batch = to_batch(CHUNK if correlations == "none" else frame)
        n = batch.n
        ours = n / best_of(lambda: calibrate(batch), 3)
        sub = frame.iloc[: args.gaiaxpy_rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            ref, _ = gaiaxpy.calibrate(sub, save_file=False)
            theirs = len(sub) / (time.perf_counter() - t0)
        check = calibrate(to_batch(sub))
        worst = np.nanmax(np.abs(check.flux / np.stack(ref["flux"].to_numpy()) - 1)[np.stack(ref["flux"].to_numpy())
                                                                                    > 1e-3 * np.nanmax(check.flux)])
        print(f"{label}:")
        print(f"  xpdb.xp.calibrate   {ours:>10,.0f} spectra/s   ({n} spectra, best of 3)")
        print(f"  gaiaxpy.calibrate   {theirs:>10,.0f} spectra/s   ({len(sub)} spectra)")
        print(f"  ratio               {ours / theirs:>10.1f} x      (max relative flux difference {worst:.1e})")


if __name__ == "__main__":
    main()
