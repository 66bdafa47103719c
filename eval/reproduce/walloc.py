"""WaLLoC measurements (docs/results/), from the shipped checkpoints.

    python -m codec.eval.reproduce.walloc [--workers 2] [--limit N] [--no-manifest] [--skip-audio]

1. Kodak RD from the real bytes (bpp, PSNR-RGB, MS-SSIM) of the shipped RGB model next to the shipped mean-scale
   hyperprior ladder and Pillow JPEG, through the RD harness (``results/walloc/kodak``).
2. The latent bitstream against walloc's own container: the same integer latents stored as lossless WebP
   (channels tiled into RGB images, 8-bit, method 6 = slowest / smallest) and as PNG; per-image bytes and the
   saving of our context-model rANS stream (the coded latent stream alone, and the whole .cdc file).
3. Encoder cost: MACs per pixel (torch.utils.flop_counter) and measured encode time per Kodak image on one CPU
   thread, for the WaLLoC analysis (WPT + 1x1 encoder + companding) and for the ScaleHyperprior analysis
   (g_a + h_a) of the image-codec issue at its published size (N=128, M=192) and at our shipped size, in the same
   run; plus full ``compress`` (to bytes) times.
4. Audio (held-out music, ``music-heldout``): kbps from the real bytes, SI-SDR and multi-scale mel distance for
   the shipped stereo model next to Opus and MP3, and the audio latents against lossless WebP.

Tables go to ``docs/results/tables/walloc_*.md``; measured points into the manifest (``rd``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time

import numpy as np
import torch

from codec.config import repo_root
from codec.eval.baselines import get_codec
from codec.eval.datasets import resolve
from codec.eval.rd import evaluate, write_outputs
from codec.eval.reproduce.common import IMAGE_POINTS, points_table, results_dirs

IMAGE_MODEL, AUDIO_MODEL = "walloc-rgb16x", "walloc-stereo"


def webp_lossless_bytes(sym: np.ndarray, rgb_tiles: bool = True) -> tuple[int, int]:
    """(lossless WebP bytes, PNG bytes) of integer latents (C, H, W) in [-127, 127] stored as 8-bit images, the way
    walloc stores them: channels grouped by three into RGB tiles stacked vertically (or one grey tile per channel
    when C is not a multiple of 3)."""
    from PIL import Image

    c = sym.shape[0]
    u8 = (sym.astype(np.int16) + 128).clip(0, 255).astype(np.uint8)
    if rgb_tiles and c % 3 == 0:
        img = Image.fromarray(u8.reshape(c // 3, 3, *sym.shape[1:]).transpose(0, 2, 3, 1).reshape(-1, sym.shape[-1], 3))
    else:
        img = Image.fromarray(u8.reshape(-1, sym.shape[-1]))
    w, p = io.BytesIO(), io.BytesIO()
    img.save(w, format="WEBP", lossless=True, quality=100, method=6)
    img.save(p, format="PNG", optimize=True)
    return len(w.getvalue()), len(p.getvalue())


def latent_vs_webp(model, items, load) -> dict:
    from codec.bitstream import unpack

    rows = []
    for path in items:
        x, data = load(path)
        _, payload = unpack(data)
        sym = model.latent_symbols(x)[0]
        if sym.ndim == 2:  # audio: (C, T) -> grey rows of at most 16,000 frames (WebP's limit is 16,383 pixels)
            c, t = sym.shape
            n = -(-t // 16000)
            grid = np.zeros((c, n * 16000), dtype=sym.dtype)
            grid[:, :t] = sym
            grid = grid.reshape(c, n, 16000).transpose(1, 0, 2).reshape(1, n * c, 16000)
            webp, png = webp_lossless_bytes(grid, rgb_tiles=False)
        else:
            webp, png = webp_lossless_bytes(sym)
        rows.append({"item": path.name, "ours_stream": len(payload.streams["latent"]), "ours_file": len(data),
                     "webp": webp, "png": png, "values": int(sym.size)})
    tot = {k: sum(r[k] for r in rows) for k in ("ours_stream", "ours_file", "webp", "png", "values")}
    tot["saving_stream_pct"] = 100 * (1 - tot["ours_stream"] / tot["webp"])
    tot["saving_file_pct"] = 100 * (1 - tot["ours_file"] / tot["webp"])
    return {"rows": rows, "total": tot}


def macs(fn, *args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        fn(*args)
    return fc.get_total_flops() / 2


def encoder_cost(walloc, items, limit: int = 8) -> dict:
    from compressai.models.google import ScaleHyperprior as CAIScaleHyperprior

    from codec.checkpoints import load_model
    from codec.media import load_image

    torch.set_num_threads(1)
    msh = load_model(None, None, "image")
    sh = CAIScaleHyperprior(128, 192).eval()
    enc = {
        "WaLLoC RGB 16x (WPT + 1x1 conv + companding)": lambda x: walloc.encode_latent(x - 0.5),
        "ScaleHyperprior N=128 M=192 (g_a + h_a), published size": lambda x: sh.h_a(torch.abs(sh.g_a(x))),
        f"MeanScaleHyperprior N={msh.N} M={msh.M} (g_a + h_a), our shipped size": lambda x: msh.h_a(msh.g_a(x)),
    }
    imgs = []
    for p in items[:limit]:
        a = load_image(p)
        imgs.append(torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255)
    x0 = msh.pad(imgs[0])
    out = {}
    for name, fn in enc.items():
        m = macs(fn, x0) / (x0.shape[2] * x0.shape[3])
        times = []
        with torch.no_grad():
            fn(x0)  # warm-up
            for x in imgs:
                x = msh.pad(x)
                t0 = time.perf_counter()
                fn(x)
                times.append(time.perf_counter() - t0)
        out[name] = {"macs_per_pixel": m, "encode_s": statistics.median(times)}
    full = {}
    for name, model in ((IMAGE_MODEL, walloc), (msh.model_name, msh)):
        times = []
        with torch.no_grad():
            model.compress(imgs[0])
            for x in imgs:
                t0 = time.perf_counter()
                model.compress(x)
                times.append(time.perf_counter() - t0)
        full[name] = statistics.median(times)
    return {"analysis": out, "compress_s": full, "images": len(imgs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--no-manifest", action="store_true")
    ap.add_argument("--skip-audio", action="store_true")
    args = ap.parse_args(argv)
    root = repo_root()
    tabs = results_dirs()[1]
    out_root = root / "results" / "walloc"
    from codec.api import encode_audio, encode_image
    from codec.checkpoints import load_manifest, load_model, write_manifest
    from codec.media import load_audio, load_image

    summary = {}
    # 1. Kodak RD
    ds = resolve("kodak", limit=args.limit)
    codecs = [get_codec(k) for k in (IMAGE_MODEL, "msh", "jpeg")]
    recs = evaluate(codecs, ds, workers=args.workers,  # shares the cache of reproduce.image_learned
                    cache_dir=None if args.no_cache else root / "results" / "kodak-learned" / "cache")
    res = write_outputs(out_root / "kodak", ds, recs, anchors=["jpeg"])
    (tabs / "walloc_kodak_points.md").write_text(points_table(res, IMAGE_POINTS))
    wl = res["curves"][IMAGE_MODEL]["results"]
    summary["kodak"] = {k: float(wl[k][0]) for k in ("bpp", "psnr-rgb", "ms-ssim-rgb")}

    # 2. latents vs lossless WebP
    model = load_model(IMAGE_MODEL, None, "image")

    def load_img(p):
        a = load_image(p)
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255, encode_image(a, model)

    lat = latent_vs_webp(model, ds.items, load_img)
    summary["kodak_latents"] = lat["total"]
    t = lat["total"]
    px = sum(int(r["values"]) for r in lat["rows"]) * model.reduction() / 3
    with open(tabs / "walloc_latent_coding.md", "w") as f:
        f.write("| latents of | values | ours: rANS stream | ours: whole .cdc file | lossless WebP (walloc) | PNG | "
                "saving vs WebP (stream / file) |\n|---|---:|---:|---:|---:|---:|---:|\n")
        f.write(f"| Kodak, {len(ds.items)} images, {IMAGE_MODEL} | {t['values']} | {t['ours_stream']} B "
                f"({t['ours_stream'] * 8 / px:.3f} bpp) | {t['ours_file']} B ({t['ours_file'] * 8 / px:.3f} bpp) | "
                f"{t['webp']} B ({t['webp'] * 8 / px:.3f} bpp) | {t['png']} B | {t['saving_stream_pct']:.1f} % / "
                f"{t['saving_file_pct']:.1f} % |\n")

    # 3. encoder cost
    cost = encoder_cost(model, ds.items)
    summary["encoder_cost"] = cost
    wname = next(iter(cost["analysis"]))
    base = cost["analysis"][wname]
    with open(tabs / "walloc_encoder_cost.md", "w") as f:
        f.write(f"Analysis transform on Kodak (768x512), one CPU thread, median of {cost['images']} images, same run:\n\n"
                "| encoder | MACs / pixel | encode time [ms] | WaLLoC / this (MACs) | WaLLoC / this (time) |\n"
                "|---|---:|---:|---:|---:|\n")
        for name, v in cost["analysis"].items():
            f.write(f"| {name} | {v['macs_per_pixel']:,.0f} | {1000 * v['encode_s']:.1f} | "
                    f"{100 * base['macs_per_pixel'] / v['macs_per_pixel']:.1f} % | "
                    f"{100 * base['encode_s'] / v['encode_s']:.1f} % |\n")
        f.write("\nWhole `compress` (analysis + entropy coding to bytes), median per image: " + ", ".join(
            f"{k} {1000 * v:.0f} ms" for k, v in cost["compress_s"].items()) + "\n")

    # 4. audio
    if not args.skip_audio:
        ads = resolve("music-heldout", limit=args.limit)
        acodecs = [get_codec(k) for k in (AUDIO_MODEL, "opus", "mp3")]
        arecs = evaluate(acodecs, ads, workers=1, cache_dir=None if args.no_cache else out_root / "cache")
        ares = write_outputs(out_root / "music-heldout", ads, arecs, anchors=["opus"])
        (tabs / "walloc_audio_points.md").write_text(points_table(ares, [
            ("kbps", "kbps", "{:.1f}"), ("SI-SDR [dB]", "si-sdr", "{:.2f}"), ("mel distance", "mel-distance", "{:.3f}"),
            ("enc s", "encoding_time", "{:.2f}"), ("dec s", "decoding_time", "{:.2f}")]))
        al = ares["curves"][AUDIO_MODEL]["results"]
        summary["music-heldout"] = {k: float(al[k][0]) for k in ("kbps", "si-sdr", "mel-distance")}
        amodel = load_model(AUDIO_MODEL, None, "audio")

        def load_aud(p):
            a, sr = load_audio(p)
            x = torch.from_numpy(np.ascontiguousarray(a.T))[None]
            from codec.api import _resample

            x = _resample(x[0], sr, amodel.sample_rate)[None]
            return x, encode_audio(a, sr, amodel)

        alat = latent_vs_webp(amodel, ads.items, load_aud)
        summary["audio_latents"] = alat["total"]
        t = alat["total"]
        with open(tabs / "walloc_latent_coding.md", "a") as f:
            f.write(f"| held-out music, {len(ads.items)} tracks, {AUDIO_MODEL} | {t['values']} | {t['ours_stream']} B | "
                    f"{t['ours_file']} B | {t['webp']} B | {t['png']} B | {t['saving_stream_pct']:.1f} % / "
                    f"{t['saving_file_pct']:.1f} % |\n")
    if not args.no_manifest and not args.limit:
        manifest = load_manifest()
        for m in manifest["models"]:
            if m["name"] == IMAGE_MODEL:
                m.setdefault("rd", {})["kodak"] = {k: round(v, 5) for k, v in summary["kodak"].items()}
                m["rd"]["kodak"]["images"] = len(ds.items)
            if m["name"] == AUDIO_MODEL and "music-heldout" in summary:
                m.setdefault("rd", {})["music-heldout"] = {k: round(v, 4) for k, v in summary["music-heldout"].items()}
        write_manifest(manifest)
    (out_root / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
