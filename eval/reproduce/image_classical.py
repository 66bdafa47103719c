"""Result figures and tables (docs/results/) for the classical image codecs on Kodak and CLIC, regenerated from scratch.

    python -m codec.eval.reproduce.image_classical [--workers 2] [--datasets kodak,clic]

Runs JPEG, WebP, AVIF (Pillow), HEVC intra (x265 4:4:4) and AV1 intra (libaom 4:4:4) over every image of each
dataset at every point of their ladders (PSNR-RGB and MS-SSIM from the real bytes), writes the full results to
``results/<dataset>/`` and copies the figures and BD-rate tables to ``docs/results/figures/`` and
``docs/results/tables/``. CompressAI's published JPEG curve is drawn dotted for reference. The result cache makes a re-run
only compute what is missing; delete ``results/<dataset>/cache`` (or pass --no-cache) to start over.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from codec.config import data_root, repo_root
from codec.eval.baselines import available_codecs, get_codec
from codec.eval.datasets import resolve
from codec.eval.rd import evaluate, write_outputs
from codec.eval.reproduce.common import IMAGE_POINTS, points_table, results_dirs

REFERENCE = {"kodak": "kodak", "clic": "clic2020-professional"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="kodak,clic")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    root = repo_root()
    figs, tabs = results_dirs()
    for name in args.datasets.split(","):
        ds = resolve(name)
        out = root / "results" / name
        codecs = [get_codec(k) for k in available_codecs("image")]
        recs = evaluate(codecs, ds, workers=args.workers, cache_dir=None if args.no_cache else out / "cache")
        ref = data_root().parent / "reference" / "compressai_results" / REFERENCE[name] / "jpeg.json"
        res = write_outputs(out, ds, recs, anchors=["jpeg"], references=[ref] if ref.exists() else [])
        for f in ("rd_psnr.png", "rd_msssim.png"):
            shutil.copy(out / f, figs / f"{name}_classical_{f}")
        shutil.copy(out / "bd_rate.md", tabs / f"{name}_classical_bd_rate.md")
        (tabs / f"{name}_classical_points.md").write_text(points_table(res, IMAGE_POINTS))
        print(f"{name}: {len(ds.items)} images\n" + "\n\n".join(res["tables"].values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
