"""Results (docs/results/) of the hierarchical VAE (QResVAE) on Kodak, regenerated from scratch.

    python -m codec.eval.reproduce.hvae [--model qres-vae] [--workers 2] [--limit N] [--no-manifest]

1. RD from the real bytes through the RD harness: the one variable-rate model at each of its qualities, next to
   the shipped msh ladder (seven models), Pillow JPEG and WebP on the same images. BD-rate against JPEG and against
   the msh ladder (negative = fewer bits). CompressAI's published mbt2018-mean curve is drawn dotted for reference
   (published numbers, not measured here). Full results in ``results/kodak-hvae/``; figures and tables copied to
   ``docs/results/``.
2. Progressive decoding: every image coded once at the top quality, then decoded from its first k latent blocks
   for every k; the rate of a prefix is the bytes a decoder reads (the file minus the streams of blocks k and later).
3. Speed on one CPU thread, in this run: encode and decode time per Kodak image of the model (at its middle
   quality) against msh-q4, through ``codec.api`` (model loading excluded).
4. The measured points go into ``checkpoints/manifest.json`` (``rd.kodak`` of the model: one point per quality).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from codec.config import data_root, repo_root
from codec.eval.baselines import get_codec
from codec.eval.datasets import resolve
from codec.eval.rd import evaluate, write_outputs
from codec.eval.reproduce.common import results_dirs

REFERENCES = ["jpeg.json", "compressai-mbt2018-mean_mse_cuda.json"]


def progressive(model_name: str, ds, log=print) -> list[dict]:
    """Per k: the mean bpp a decoder of the first k blocks reads and the PSNR it gets (top quality)."""
    import numpy as np

    from codec.api import decode, encode_image
    from codec.bitstream import unpack
    from codec.checkpoints import load_model
    from codec.eval.metrics import psnr_rgb
    from codec.media import load_image

    m = load_model(model_name)
    n = m.num_latent_blocks
    bits = np.zeros(n + 1)
    psnr = np.zeros(n + 1)
    pixels = 0
    for p in ds.items:
        img = load_image(p)
        data = encode_image(img, m, quality=m.n_qualities)
        _, payload = unpack(data)
        pixels += img.shape[0] * img.shape[1]
        for k in range(n + 1):
            unread = sum(len(payload.streams[f"z{j}"]) for j in range(k, n))
            bits[k] += (len(data) - unread) * 8
            psnr[k] += psnr_rgb(img, decode(data, m, blocks=k))
        log(f"  progressive: {p.name} done", flush=True)
    return [{"blocks": k, "bpp": bits[k] / pixels, "psnr-rgb": psnr[k] / len(ds.items)} for k in range(n + 1)]


def speed(model_name: str, ds, images: int = 4) -> dict:
    """Seconds per image on one thread, encode and decode, for the model (middle quality) and msh-q4."""
    import torch

    from codec.api import decode, encode_image
    from codec.checkpoints import load_model
    from codec.media import load_image

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    items = ds.items[:images]
    images = len(items)
    try:
        for name in (model_name, "msh-q4"):
            m = load_model(name)
            enc = dec = 0.0
            for p in items:
                img = load_image(p)
                t0 = time.perf_counter()
                data = encode_image(img, m)
                t1 = time.perf_counter()
                decode(data, m)
                t2 = time.perf_counter()
                enc += t1 - t0
                dec += t2 - t1
            out[name] = {"encode_s": enc / images, "decode_s": dec / images, "params": m.num_parameters()}
    finally:
        torch.set_num_threads(threads)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qres-vae")
    ap.add_argument("--dataset", default="kodak")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N images only (a quick check)")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--no-manifest", action="store_true")
    args = ap.parse_args(argv)
    root = repo_root()
    figs, tabs = results_dirs()
    ds = resolve(args.dataset, limit=args.limit)
    name = ds.name
    out = root / "results" / f"{name}-hvae"
    codecs = [get_codec(k) for k in (args.model, "msh", "jpeg", "webp")]
    recs = evaluate(codecs, ds, workers=args.workers, cache_dir=None if args.no_cache else out / "cache")
    refs = [data_root().parent / "reference" / "compressai_results" / name / f for f in REFERENCES]
    res = write_outputs(out, ds, recs, anchors=["jpeg", "msh"], references=[r for r in refs if r.exists()])
    for f in ("rd_psnr.png", "rd_msssim.png"):
        shutil.copy(out / f, figs / f"{name}_hvae_{f}")
    shutil.copy(out / "bd_rate.md", tabs / f"{name}_hvae_bd_rate.md")
    curve = res["curves"][args.model]["results"]
    lines = ["| quality | lambda | bpp | PSNR-RGB (dB) | MS-SSIM |", "|---:|---:|---:|---:|---:|"]
    from codec.checkpoints import load_model

    lambdas = load_model(args.model).quality_lambdas()
    for i, q in enumerate(curve["quality"]):
        lines.append(f"| {q} | {lambdas[int(q) - 1]:.4g} | {curve['bpp'][i]:.4f} | {curve['psnr-rgb'][i]:.2f} | "
                     f"{curve['ms-ssim-rgb'][i]:.4f} |")
    (tabs / f"{name}_hvae_points.md").write_text("\n".join(lines) + "\n")
    prog = progressive(args.model, ds)
    with open(tabs / f"{name}_hvae_progressive.md", "w") as f:
        f.write("| latent blocks decoded | bpp read | PSNR-RGB (dB) |\n|---:|---:|---:|\n")
        for r in prog:
            f.write(f"| {r['blocks']} | {r['bpp']:.4f} | {r['psnr-rgb']:.2f} |\n")
    sp = speed(args.model, ds)
    with open(tabs / f"{name}_hvae_speed.md", "w") as f:
        f.write("| model | parameters | encode s / image | decode s / image |\n|---|---:|---:|---:|\n")
        for k, v in sp.items():
            f.write(f"| {k} | {v['params'] / 1e6:.2f} M | {v['encode_s']:.2f} | {v['decode_s']:.2f} |\n")
    if not args.no_manifest:
        from codec.checkpoints import load_manifest, write_manifest

        manifest = load_manifest()
        for m in manifest["models"]:
            if m["name"] == args.model:
                m.setdefault("rd", {})[name] = [
                    {"quality": int(q), "bpp": round(float(curve["bpp"][i]), 5),
                     "psnr-rgb": round(float(curve["psnr-rgb"][i]), 3),
                     "ms-ssim-rgb": round(float(curve["ms-ssim-rgb"][i]), 5), "images": len(ds.items)}
                    for i, q in enumerate(curve["quality"])]
        write_manifest(manifest)
    print(f"{name}: {len(ds.items)} images\n" + "\n\n".join(res["tables"].values()))
    print(json.dumps({"progressive": prog, "speed": sp}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
