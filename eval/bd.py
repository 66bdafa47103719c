"""Bjøntegaard deltas (BD-rate, BD-PSNR) and CompressAI results-JSON I/O.

The interpolation is the maintained ``bjontegaard`` package (FAU-LMS, 1.3.0): ``cubic`` is VCEG-M33's third-order
polynomial fit of log-rate against quality, ``pchip`` the piecewise cubic Hermite interpolation of the JCT-VC /
JVET common-test-condition sheets (``akima`` is available too). BD-rate is in percent (negative: the test codec
needs fewer bits for the same quality); BD-PSNR in dB (positive: better). Curves may have different numbers of
points; the integral runs over the quality interval both cover.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

METHODS = ("cubic", "pchip", "akima")


def _clean(rate, dist):
    r = np.asarray(rate, dtype=np.float64)
    d = np.asarray(dist, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(d) & (r > 0)
    r, d = r[ok], d[ok]
    order = np.argsort(r)
    return r[order], d[order]


def _bjontegaard(fn, ra, da, rt, dt, method: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn(ra, da, rt, dt, method=method, require_matching_points=False, min_overlap=0))
        except AssertionError:  # a curve whose quality falls as its rate rises: no BD value exists
            return float("nan")


def bd_rate(rate_anchor, dist_anchor, rate_test, dist_test, method: str = "cubic") -> float:
    import bjontegaard

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    ra, da = _clean(rate_anchor, dist_anchor)
    rt, dt = _clean(rate_test, dist_test)
    if min(ra.size, rt.size) < 2 or min(da.max(), dt.max()) <= max(da.min(), dt.min()):
        return float("nan")  # no overlap in quality: no BD value exists
    return _bjontegaard(bjontegaard.bd_rate, ra, da, rt, dt, method)


def bd_psnr(rate_anchor, dist_anchor, rate_test, dist_test, method: str = "cubic") -> float:
    import bjontegaard

    ra, da = _clean(rate_anchor, dist_anchor)
    rt, dt = _clean(rate_test, dist_test)
    if min(ra.size, rt.size) < 2 or min(ra.max(), rt.max()) <= max(ra.min(), rt.min()):
        return float("nan")
    return _bjontegaard(bjontegaard.bd_psnr, ra, da, rt, dt, method)


def load_results(path) -> dict:
    """A CompressAI-layout results JSON: ``{"name", "description", "results": {"bpp": [...], ...}}``."""
    d = json.loads(Path(path).read_text())
    if "results" not in d or not isinstance(d["results"], dict):
        raise ValueError(f"{path}: not a CompressAI results file (no 'results' object)")
    return d


def msssim_db(values) -> list:
    return [-10 * math.log10(max(1e-10, 1 - v)) if v == v else float("nan") for v in values]


def bd_table(curves: dict, anchors: list, rate_key: str = "bpp", metric: str = "psnr-rgb",
             method: str = "cubic") -> str:
    """Markdown table of BD-rate (%) of each codec (rows) against each anchor (columns).

    ``curves``: name -> results dict (CompressAI layout ``results``). MS-SSIM is compared in dB."""
    def dist(res):
        v = res[metric]
        return msssim_db(v) if metric.startswith("ms-ssim") else v

    lines = ["| codec | " + " | ".join(f"vs {a}" for a in anchors) + " |",
             "|---|" + "---:|" * len(anchors)]
    for name, res in curves.items():
        cells = []
        for a in anchors:
            if a == name:
                cells.append("0 (anchor)")
                continue
            v = bd_rate(curves[a][rate_key], dist(curves[a]), res[rate_key], dist(res), method=method)
            cells.append("n/a (no overlap)" if v != v else f"{v:+.1f} %")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
