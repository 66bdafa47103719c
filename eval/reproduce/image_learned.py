"""Results (docs/results/) of the shipped image ladder on Kodak, regenerated from scratch.

    python -m codec.eval.reproduce.image_learned [--workers 2] [--family msh] [--dataset kodak]

1. RD from the real bytes: the shipped family (every quality) next to Pillow JPEG and WebP on the same images, through
   the RD harness (the container file's bytes, decoded by ``codec.api``; PSNR-RGB and MS-SSIM). Full results in
   ``results/<dataset>-learned/``; figures and tables copied to ``docs/results/figures/`` and ``docs/results/tables/``. BD-rate
   against JPEG (negative = fewer bits). CompressAI's published bmshj2018-hyperprior and mbt2018-mean curves are
   drawn dotted for reference (published numbers, not measured here).
2. Real bytes versus the likelihood estimate for every (quality, image): the estimate is
   ``-sum(log2 p)`` of the eval-mode forward pass on the same padded image; the real figure is the coded
   streams' bytes (and, separately, the whole container file with its header).
3. The measured Kodak points are written into ``checkpoints/manifest.json`` (``rd.<dataset>`` of each model).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from codec.config import data_root, repo_root
from codec.eval.baselines import get_codec
from codec.eval.datasets import resolve
from codec.eval.rd import evaluate, write_outputs
from codec.eval.reproduce.common import IMAGE_POINTS, points_table, results_dirs

REFERENCES = {"kodak": ("kodak", ["jpeg.json", "compressai-bmshj2018-hyperprior_mse_cuda.json",
                                  "compressai-mbt2018-mean_mse_cuda.json"])}


def likelihood_check(family: str, ds) -> list[dict]:
    import numpy as np
    import torch

    from codec.api import encode_image
    from codec.bitstream import unpack
    from codec.checkpoints import load_manifest, load_model
    from codec.media import load_image

    rows = []
    entries = [m for m in load_manifest()["models"] if m.get("family") == family]
    for e in sorted(entries, key=lambda m: m["quality"]):
        model = load_model(e["name"])
        est, real, container, pixels = 0.0, 0, 0, 0
        for p in ds.items:
            img = load_image(p)
            data = encode_image(img, model)
            _, payload = unpack(data)
            x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
            with torch.inference_mode():
                out = model(model.pad(x))
            est += sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
            real += payload.num_bytes * 8
            container += len(data) * 8
            pixels += img.shape[0] * img.shape[1]
        rows.append({"model": e["name"], "quality": e["quality"], "bpp_estimate": est / pixels,
                     "bpp_streams": real / pixels, "bpp_file": container / pixels,
                     "diff_streams_pct": 100 * (real - est) / est, "diff_file_pct": 100 * (container - est) / est})
        print(f"{e['name']}: estimate {est / pixels:.4f} bpp, streams {real / pixels:.4f} bpp "
              f"({rows[-1]['diff_streams_pct']:+.2f} %), file {container / pixels:.4f} bpp "
              f"({rows[-1]['diff_file_pct']:+.2f} %)", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="msh")
    ap.add_argument("--dataset", default="kodak")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="first N images only (a quick check)")
    ap.add_argument("--no-manifest", action="store_true", help="do not write the measured points to the manifest")
    args = ap.parse_args(argv)
    root = repo_root()
    figs, tabs = results_dirs()
    ds = resolve(args.dataset, limit=args.limit)
    name = ds.name
    out = root / "results" / f"{name}-learned"
    codecs = [get_codec(k) for k in (args.family, "jpeg", "webp")]
    recs = evaluate(codecs, ds, workers=args.workers, cache_dir=None if args.no_cache else out / "cache")
    refdir, reffiles = REFERENCES.get(name, (name, []))
    refs = [data_root().parent / "reference" / "compressai_results" / refdir / f for f in reffiles]
    res = write_outputs(out, ds, recs, anchors=["jpeg"], references=[r for r in refs if r.exists()])
    for f in ("rd_psnr.png", "rd_msssim.png"):
        shutil.copy(out / f, figs / f"{name}_learned_{f}")
    shutil.copy(out / "bd_rate.md", tabs / f"{name}_learned_bd_rate.md")
    (tabs / f"{name}_learned_points.md").write_text(points_table(res, IMAGE_POINTS))
    rows = likelihood_check(args.family, ds)
    with open(tabs / f"{name}_learned_likelihood.md", "w") as f:
        f.write("| model | estimate bpp (-log2 p) | coded streams bpp | diff | whole file bpp | diff |\n"
                "|---|---:|---:|---:|---:|---:|\n")
        for r in rows:
            f.write(f"| {r['model']} | {r['bpp_estimate']:.4f} | {r['bpp_streams']:.4f} | "
                    f"{r['diff_streams_pct']:+.2f} % | {r['bpp_file']:.4f} | {r['diff_file_pct']:+.2f} % |\n")
    if not args.no_manifest:
        from codec.checkpoints import load_manifest, write_manifest

        curve = res["curves"][args.family]["results"]
        manifest = load_manifest()
        for m in manifest["models"]:
            if m.get("family") == args.family and m.get("quality") in curve["quality"]:
                i = curve["quality"].index(m["quality"])
                m.setdefault("rd", {})[name] = {k: round(float(curve[k][i]), 5) for k in
                                                ("bpp", "psnr-rgb", "ms-ssim-rgb")}
                m["rd"][name]["images"] = len(ds.items)
        write_manifest(manifest)
    print(f"{name}: {len(ds.items)} images\n" + "\n\n".join(res["tables"].values()))
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
