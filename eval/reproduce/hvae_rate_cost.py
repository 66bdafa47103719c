"""What one model for every rate costs: the variable-rate hierarchical VAE against the same model trained for one
rate, at the same training budget, on Kodak from the real bytes.

    python -m codec.eval.reproduce.hvae_rate_cost [--variable CKPT] [--fixed CKPT] [--workers 1] [--limit N]

Both runs share the layout, data, batch, learning rate, seed and number of steps (``train/configs/qres-vae.yaml``,
6,250 steps; ``train/configs/qres-vae-fixed.yaml`` is the same run trained at one quality's lambda only). The
variable-rate model is coded at all its qualities, the fixed one at the quality it was trained for. Reported: the
fixed model's point, the variable model's point at the same lambda, and the bits the variable model needs for the
fixed model's PSNR (log-bpp interpolated along its curve; none when that PSNR is beyond its range), and what Pillow
JPEG needs for each model's PSNR. Table:
``docs/results/tables/{dataset}_hvae_rate_cost.md``; raw records in ``results/{dataset}-hvae-rate-cost/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from codec.config import repo_root
from codec.eval.baselines import get_codec
from codec.eval.datasets import resolve
from codec.eval.rd import aggregate, evaluate
from codec.eval.reproduce.common import results_dirs


def exported(ckpt: Path, out: Path) -> Path:
    """``ckpt`` (a train/fit.py checkpoint) exported to ``out`` unless that is already newer."""
    from codec.export import export

    if not out.is_file() or out.stat().st_mtime < ckpt.stat().st_mtime:
        export(ckpt, out, force=True)
    return out


def curve(records: list[dict], key: str) -> dict[int, dict]:
    """Mean bpp and PSNR-RGB per point of one codec (the harness's dataset means), keyed by point."""
    r = aggregate(records, key, "image")["results"]
    return {int(q): {"bpp": b, "psnr": p} for q, b, p in zip(r["quality"], r["bpp"], r["psnr-rgb"])}


def rd_cost(lmbda: float, point: dict) -> float:
    """The training objective lambda * 255^2 * MSE + bpp at a curve point, with the MSE of its mean PSNR."""
    return lmbda * 255 ** 2 * 10 ** (-point["psnr"] / 10) + point["bpp"]


def bpp_at_psnr(points: dict[int, dict], psnr: float) -> float | None:
    """bpp of a curve at ``psnr``, interpolated linearly in log-bpp between its neighbours (None outside it)."""
    pts = sorted((p["psnr"], np.log(p["bpp"])) for p in points.values())
    for (p0, b0), (p1, b1) in zip(pts, pts[1:]):
        if p0 <= psnr <= p1 and p1 > p0:
            return float(np.exp(b0 + (b1 - b0) * (psnr - p0) / (p1 - p0)))
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variable", default="runs/qres-vae/stage1-final.ckpt")
    ap.add_argument("--fixed", default="runs/qres-vae-fixed/checkpoints/last.ckpt")
    ap.add_argument("--dataset", default="kodak")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    import torch

    from codec.checkpoints import load_model

    ds = resolve(args.dataset, limit=args.limit)
    out = repo_root() / "results" / f"{ds.name}-hvae-rate-cost"
    out.mkdir(parents=True, exist_ok=True)
    files, hparams = {}, {}
    for role in ("variable", "fixed"):
        ck = Path(getattr(args, role))
        if not ck.is_file():
            print(f"hvae_rate_cost: no {role} checkpoint at {ck} (train it: see this module's docstring)",
                  file=sys.stderr)
            return 2
        files[role] = exported(ck, out / f"{role}.pt")
        state = torch.load(ck, map_location="cpu", weights_only=False)
        files[role + "_steps"] = int(state.get("global_step", 0))
        hparams[role] = state["hyper_parameters"]["codec"]["init_args"]
        del state
    fixed_model = load_model(str(files["fixed"]))
    q = hparams["fixed"].get("train_quality")
    if not q:
        print(f"hvae_rate_cost: {args.fixed} was not trained at one quality (train_quality)", file=sys.stderr)
        return 2
    lm = fixed_model.quality_lambdas()[q - 1]
    var, fix = get_codec(str(files["variable"])), get_codec(str(files["fixed"]))
    fix.key = "fixed"
    var.key = "variable"
    recs = evaluate([var, fix, get_codec("jpeg")], ds, points={"fixed": [q]}, workers=args.workers,
                    cache_dir=out / "cache")
    cv, cf, cj = curve(recs, "variable"), curve(recs, "fixed"), curve(recs, "jpeg")
    f, v = cf[q], cv[q]
    need = bpp_at_psnr(cv, f["psnr"])
    jpeg_f, jpeg_v = bpp_at_psnr(cj, f["psnr"]), bpp_at_psnr(cj, v["psnr"])
    rows = [
        f"| fixed rate (lambda {lm:.4g} only) | {files['fixed_steps']} | {q} | {f['bpp']:.4f} | {f['psnr']:.2f} | "
        f"{rd_cost(lm, f):.4f} |",
        f"| variable rate (lambda 0.0018..0.2) | {files['variable_steps']} | {q} | {v['bpp']:.4f} | {v['psnr']:.2f} | "
        f"{rd_cost(lm, v):.4f} |"]
    verdict = (f"The variable-rate model needs {need:.4f} bpp for the fixed model's {f['psnr']:.2f} dB: "
               f"{100 * (need / f['bpp'] - 1):+.1f} % bits." if need else
               f"The fixed model's {f['psnr']:.2f} dB is beyond the variable-rate model's curve "
               f"({min(p['psnr'] for p in cv.values()):.2f} to {max(p['psnr'] for p in cv.values()):.2f} dB), so no "
               "equal-PSNR rate is interpolated.")
    for who, pt, jb in (("fixed", f, jpeg_f), ("variable-rate", v, jpeg_v)):
        if jb:
            verdict += (f" Pillow JPEG needs {jb:.4f} bpp for the {who} model's {pt['psnr']:.2f} dB "
                        f"({100 * (pt['bpp'] / jb - 1):+.1f} % bits for ours).")
    full = ["| variable-rate quality | lambda | bpp | PSNR-RGB (dB) |", "|---:|---:|---:|---:|"] + [
        f"| {k} | {fixed_model.quality_lambdas()[k - 1]:.4g} | {p['bpp']:.4f} | {p['psnr']:.2f} |" for k, p in cv.items()]
    _, tabs = results_dirs()
    text = (f"One model for every rate against one model per rate, {ds.name} ({len(ds.items)} images), real bytes. "
            f"Same layout, data, batch, learning rate, seed and steps; the RD cost is lambda * 255^2 * MSE + bpp "
            f"(MSE of the mean PSNR) at the fixed model's lambda (lower is better). Regenerate: `python -m codec.eval.reproduce.hvae_rate_cost`."
            f"\n\n| model | steps | quality | bpp | PSNR-RGB (dB) | RD cost |\n|---|---:|---:|---:|---:|---:|\n"
            + "\n".join(rows) + f"\n\n{verdict}\n\n" + "\n".join(full) + "\n")
    if not args.limit:  # a quick check does not overwrite the table
        (tabs / f"{ds.name}_hvae_rate_cost.md").write_text(text)
    (out / "rate_cost.json").write_text(json.dumps({"fixed": cf, "variable": cv, "jpeg": cj, "quality": q,
                                                    "lambda": lm, "variable_bpp_at_fixed_psnr": need,
                                                    "jpeg_bpp_at_fixed_psnr": jpeg_f,
                                                    "jpeg_bpp_at_variable_psnr": jpeg_v}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
