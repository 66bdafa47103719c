"""External check of the harness: our Pillow JPEG curve on Kodak against CompressAI's published Kodak JPEG curve.

    python -m codec.eval.reproduce.jpeg_vs_compressai [--out results/jpeg_check]

Both are Pillow JPEG at default settings (CompressAI used Pillow 7.1.2; we pin Pillow 12.0.0) on the 24 Kodak
images, with PSNR-RGB on 8-bit images and bpp from the file bytes, means over images. We interpolate PSNR at 0.25,
0.5 and 0.75 bpp (linear in log-bpp between measured points) on both curves and print the differences; the check
passes when every difference is within 0.3 dB. Exit code 0 on pass, 1 on fail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from codec.config import repo_root
from codec.eval.baselines import PillowJPEG
from codec.eval.bd import load_results
from codec.eval.datasets import resolve
from codec.eval.rd import aggregate, evaluate

QUALITIES = [3, 5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90]
BPPS = (0.25, 0.5, 0.75)
TOLERANCE_DB = 0.3


def reference_json() -> Path:
    from codec.config import data_root

    return data_root().parent / "reference" / "compressai_results" / "kodak" / "jpeg.json"


def psnr_at(bpp, psnr, targets):
    order = np.argsort(bpp)
    return np.interp(np.log(targets), np.log(np.asarray(bpp)[order]), np.asarray(psnr)[order])


def check(out: Path | None = None, workers: int = 1, progress: bool = True) -> dict:
    ds = resolve("kodak")
    recs = evaluate([PillowJPEG()], ds, {"jpeg": QUALITIES}, workers=workers,
                    cache_dir=out / "cache" if out else None, progress=progress, with_msssim=False)
    ours = aggregate(recs, "jpeg", "image")["results"]
    ref = load_results(reference_json())["results"]
    a = psnr_at(ours["bpp"], ours["psnr-rgb"], BPPS)
    b = psnr_at(ref["bpp"], ref["psnr-rgb"], BPPS)
    return {"bpp": list(BPPS), "ours": a.tolist(), "compressai": b.tolist(), "diff": (a - b).tolist(),
            "items": len(ds.items), "ours_curve": ours}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(repo_root() / "results" / "jpeg_check"))
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    r = check(Path(args.out), args.workers)
    print(f"Pillow JPEG on Kodak ({r['items']} images) vs CompressAI's published Kodak JPEG (jpeg.json)")
    print("| bpp | ours PSNR-RGB [dB] | CompressAI [dB] | difference [dB] |\n|---:|---:|---:|---:|")
    for x, a, b, d in zip(r["bpp"], r["ours"], r["compressai"], r["diff"]):
        print(f"| {x:.2f} | {a:.2f} | {b:.2f} | {d:+.2f} |")
    ok = all(abs(d) <= TOLERANCE_DB for d in r["diff"])
    print(f"within {TOLERANCE_DB} dB everywhere: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
