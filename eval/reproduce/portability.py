"""The figures of docs/portability.md, regenerated: what exact integer entropy parameters cost, and the cross-backend check.

    python -m codec.eval.reproduce.portability [--family msh] [--limit N] [--check-images all --check-clips all]

1. Cost, on Kodak, for every quality of the image family, from real bytes: each image is coded twice in this run by
   the same shipped model, once as shipped (hyper-synthesis as an exact integer network,
   :mod:`codec.entropy.intnet`) and once with the float hyper-synthesis the package used before (table indexes
   from CompressAI's ``build_indexes`` on float scales, float means; same tables, same entropy coder, same
   container overhead). Rate (bpp of the files), PSNR-RGB, BD-rate of exact against float (cubic and pchip), and
   decode time (``decompress`` of each, interleaved per image, after a warm-up) with its ratio.
2. The cross-backend check of :mod:`codec.eval.portability` (decode in fresh processes with oneDNN off and with
   another thread count; same symbols and same entropy-parameter digests), on ``--check-images`` Kodak images at
   qualities 1, 4 and 7 and ``--check-clips`` video clips.

Writes ``docs/results/tables/portability_cost.md``, ``docs/results/tables/portability_check.md`` and ``results/portability/*.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from codec.eval.reproduce.common import results_dirs


def float_reference(model, x):
    """(stream bytes, decode function) of the float hyper-synthesis coding of ``x`` by ``model`` (the reference)."""
    import torch

    from codec.entropy import decode, encode
    from codec.entropy.adapters import gaussian_conditional_indexes

    gc = model.gaussian_conditional
    with torch.inference_mode():
        y = model.g_a(model.pad(x))
        z = model.hyper_encode(y)
        z_data, z_sym = model._code_z(z)
        z_hat = model._decode_z(z_data, tuple(z_sym.shape))[1]
        scales, means = model.hyper_decode(z_hat)
        idx = gaussian_conditional_indexes(gc, scales)
        sym = torch.round(y - means if means is not None else y).to(torch.int32).numpy()
        y_data = encode(sym, idx, model.tables["gaussian"])
    h, w = x.shape[-2:]

    def dec():
        with torch.inference_mode():
            zs, zh = model._decode_z(z_data, tuple(z_sym.shape))
            sc, mu = model.hyper_decode(zh)
            ys = decode(y_data, gaussian_conditional_indexes(gc, sc), model.tables["gaussian"], shape=tuple(sc.shape))
            y_hat = torch.from_numpy(ys.astype(np.float32)) + (mu if mu is not None else 0)
            return model.g_s(y_hat).clamp_(0, 1)[..., :h, :w]

    return len(z_data) + len(y_data), dec


def cost(family: str, limit: int | None, log=print) -> dict:
    import torch

    from codec.api import encode_image
    from codec.bitstream import unpack
    from codec.checkpoints import load_manifest, load_model
    from codec.eval.bd import bd_rate
    from codec.eval.datasets import resolve
    from codec.eval.metrics import psnr_rgb
    from codec.media import load_image

    ds = resolve("kodak", limit=limit)
    entries = sorted((m for m in load_manifest()["models"] if m.get("family") == family), key=lambda m: m["quality"])
    rows = []
    for e in entries:
        model = load_model(e["name"])
        acc = {"bits_exact": 0, "bits_float": 0, "pixels": 0, "psnr_exact": [], "psnr_float": [], "t_exact": 0.0,
               "t_float": 0.0, "hs_exact": 0.0, "hs_float": 0.0}
        for i, p in enumerate(ds.items):
            img = load_image(p)
            x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
            data = encode_image(img, model)
            header, payload = unpack(data)
            overhead = len(data) - payload.num_bytes
            fbytes, fdec = float_reference(model, x)
            with torch.inference_mode():
                if i == 0:  # warm-up
                    model.decompress(payload)
                    fdec()
                t0 = time.perf_counter()
                xe, _ = model.decompress(payload)
                t1 = time.perf_counter()
                xf = fdec()
                t2 = time.perf_counter()
                # the hyper-synthesis alone, float against exact integer, on this image's z
                zs = model._decode_z(payload.streams["z"], (1, model.N) + model._latent_shape(*img.shape[:2], 64))
                t3 = time.perf_counter()
                model.hyper_decode(zs[1])
                t4 = time.perf_counter()
                model.hyper_fixed(model.z_fixed(zs[0]))
                t5 = time.perf_counter()
            to8 = lambda t: (t[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            acc["bits_exact"] += 8 * len(data)
            acc["bits_float"] += 8 * (fbytes + overhead)
            acc["pixels"] += img.shape[0] * img.shape[1]
            acc["psnr_exact"].append(psnr_rgb(img, to8(xe)))
            acc["psnr_float"].append(psnr_rgb(img, to8(xf)))
            acc["t_exact"] += t1 - t0
            acc["t_float"] += t2 - t1
            acc["hs_float"] += t4 - t3
            acc["hs_exact"] += t5 - t4
        n = len(ds.items)
        row = {"model": e["name"], "quality": e["quality"], "images": n,
               "bpp_float": acc["bits_float"] / acc["pixels"], "bpp_exact": acc["bits_exact"] / acc["pixels"],
               "psnr_float": float(np.mean(acc["psnr_float"])), "psnr_exact": float(np.mean(acc["psnr_exact"])),
               "decode_s_float": acc["t_float"] / n, "decode_s_exact": acc["t_exact"] / n,
               "hs_s_float": acc["hs_float"] / n, "hs_s_exact": acc["hs_exact"] / n}
        row["rate_change_pct"] = 100 * (row["bpp_exact"] / row["bpp_float"] - 1)
        rows.append(row)
        log(f"{e['name']}: float {row['bpp_float']:.4f} bpp {row['psnr_float']:.3f} dB, exact {row['bpp_exact']:.4f} "
            f"bpp {row['psnr_exact']:.3f} dB ({row['rate_change_pct']:+.3f} %), decode {row['decode_s_float']:.3f} -> "
            f"{row['decode_s_exact']:.3f} s")
    rf, df = [r["bpp_float"] for r in rows], [r["psnr_float"] for r in rows]
    re_, de = [r["bpp_exact"] for r in rows], [r["psnr_exact"] for r in rows]
    tf, te = sum(r["decode_s_float"] for r in rows), sum(r["decode_s_exact"] for r in rows)
    return {"family": family, "rows": rows, "bd_rate_cubic": bd_rate(rf, df, re_, de, "cubic"),
            "bd_rate_pchip": bd_rate(rf, df, re_, de, "pchip"), "decode_time_ratio": te / tf,
            "threads": torch.get_num_threads()}


def cost_table(res: dict) -> str:
    lines = ["| model | float bpp | exact bpp | rate change | float PSNR | exact PSNR | decode float | decode exact | "
             "h_s float | h_s exact |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        lines.append(f"| {r['model']} | {r['bpp_float']:.4f} | {r['bpp_exact']:.4f} | {r['rate_change_pct']:+.3f} % | "
                     f"{r['psnr_float']:.3f} dB | {r['psnr_exact']:.3f} dB | {r['decode_s_float'] * 1000:.0f} ms | "
                     f"{r['decode_s_exact'] * 1000:.0f} ms | {r['hs_s_float'] * 1000:.1f} ms | "
                     f"{r['hs_s_exact'] * 1000:.1f} ms |")
    lines += ["", f"BD-rate of the exact integer hyper-synthesis against the float one (Kodak, "
                  f"{res['rows'][0]['images']} images, PSNR-RGB): **{res['bd_rate_cubic']:+.3f} %** (cubic), "
                  f"{res['bd_rate_pchip']:+.3f} % (pchip). Decode time ratio (sum over qualities, "
                  f"{res['threads']} threads): **{res['decode_time_ratio']:.3f}x**. Decode times are per image, "
                  "whole `decompress` (entropy decoding, hyper-synthesis, table choice, synthesis); the float "
                  "reference chooses tables with CompressAI's `build_indexes` (one comparison pass per scale level), "
                  "as the package did before. The last two columns time the hyper-synthesis alone."]
    return "\n".join(lines) + "\n"


def check_table(results: dict, images, clips, frames) -> str:
    from codec.eval.portability import summarise

    lines, ok = summarise(results)
    head = (f"Encoded in one process (default settings), decoded in fresh processes; Kodak images: {images} at "
            f"qualities 1, 4, 7 (default image family); video clips: {clips}, first {frames} frames (default video "
            f"family). Verdict: {'all identical' if ok else 'DIFFERENCES FOUND'}.")
    return head + "\n\n```\n" + "\n".join(lines) + "\n```\n"


def main(argv=None) -> int:
    from codec.config import repo_root

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="msh")
    ap.add_argument("--limit", type=int, default=None, help="first N Kodak images only (a quick check)")
    ap.add_argument("--check-images", default="all")
    ap.add_argument("--check-clips", default="all")
    ap.add_argument("--check-frames", type=int, default=8)
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--skip-check", action="store_true")
    args = ap.parse_args(argv)
    root = repo_root()
    out = root / "results" / "portability"
    out.mkdir(parents=True, exist_ok=True)
    tabs = results_dirs()[1]
    tabs.mkdir(parents=True, exist_ok=True)
    ok = True
    if not args.skip_cost:
        res = cost(args.family, args.limit)
        (out / "cost.json").write_text(json.dumps(res, indent=1) + "\n")
        (tabs / "portability_cost.md").write_text(cost_table(res))
        print(cost_table(res))
    if not args.skip_check:
        from codec.eval.portability import check, summarise

        results = check(args.check_images, (1, 4, 7), args.check_clips, args.check_frames)
        (out / "check.json").write_text(json.dumps(results, indent=1) + "\n")
        (tabs / "portability_check.md").write_text(check_table(results, args.check_images, args.check_clips,
                                                               args.check_frames))
        lines, ok = summarise(results)
        print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
