"""Training stages and recipes of the hierarchical VAE side by side on Kodak: the ideal code length of the rounded
latents (the float model's likelihoods in evaluation mode; the real files measured by ``codec.eval.reproduce.hvae``
differ from it by up to about 3 %, container included) and PSNR-RGB at every quality, with BD-rate against the first
checkpoint given.

    python -m codec.eval.reproduce.hvae_stages [CKPT ...] [--limit N] [--cache DIR] [--against RESULTS.json]

A CKPT is a train/fit.py checkpoint or a shipped one (``checkpoints/qres-vae.pt``). ``--table NAME`` writes the
table of any checkpoints given to ``docs/results/tables/<dataset>_NAME.md``.

Each checkpoint's curve is kept in ``results/hvae_stages/`` under a hash of the checkpoint file, the dataset and the
image count, so a table of many stages measures only the checkpoints it has not seen.

Default checkpoints: the shipped model's stage ends (``make train-hvae`` copies them to ``runs/qres-vae/``) and the
controls of the third stage without prefix training (``train/configs/qres-vae-stage3-plain.yaml``), of the fourth
with half the images prefix-trained (``qres-vae-stage4-drop50.yaml``), of the fifth with a wider lambda range
(``qres-vae-stage5-wide.yaml``) and the two sixth-stage lambda ranges (``qres-vae-stage6-wide.yaml``,
``qres-vae-stage6-hi.yaml``). Table:
``docs/results/tables/kodak_hvae_stages.md``. ``make hvae-controls`` also writes the later stages' tables: 7 and 8
(and stage 7 widened at both ends) against the end of stage 6 (``--table hvae_stages_late``), stage 9 and its two
controls against stage 8 (``hvae_stages_9``), stage 10 against stage 9 (``hvae_stages_10``), stage 11 and its
control at twice the lr against stage 10 (``hvae_stages_11``), and stage 12 against stage 11 (``hvae_stages_12``).
It also writes the crop stages' tables: stage 12 at 256 px crops and its 128 px control against stage 11
(``hvae_stages_12_crop``), stage 13 at 256 and 320 px against stage 12 (``hvae_stages_13``), and stage 14 at batch
3 and 6 against the 256 px stage 13 (``hvae_stages_14``), each with a
second BD-rate against the msh ladder's curve from its files (``--against results/kodak-hvae/msh.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from codec.config import repo_root
from codec.eval.bd import bd_rate
from codec.eval.datasets import resolve
from codec.eval.metrics import psnr as psnr_of
from codec.eval.reproduce.common import results_dirs

DEFAULT = ["runs/qres-vae/stage2-final.ckpt", "runs/qres-vae/stage3-plain-final.ckpt",
           "runs/qres-vae/stage3-final.ckpt", "runs/qres-vae/stage4-final.ckpt",
           "runs/qres-vae-stage4-drop50/checkpoints/last.ckpt", "runs/qres-vae/stage5-final.ckpt",
           "runs/qres-vae-stage5-wide/checkpoints/last.ckpt", "runs/qres-vae-stage6-wide/checkpoints/last.ckpt",
           "runs/qres-vae-stage6-hi/checkpoints/last.ckpt"]


def load(ckpt: Path, data: bytes):
    """A train/fit.py checkpoint or a shipped (exported) one, from its contents ``data`` (read once, also to hash
    them): a function building its QResVAE (its own hyperparameters, evaluation mode), its step and its
    hyperparameters."""
    from codec.checkpoints import load_checkpoint_file, torch_load
    from codec.codecs.base import read_state_dict
    from codec.codecs.image import QResVAE

    state = torch_load(ckpt, data)
    if "hyper_parameters" not in state:  # shipped: steps and prefix_drop from its training record
        rec = state.get("training", {})
        hp = {"prefix_drop": rec.get("prefix_drop", 0.0)}
        return (lambda: load_checkpoint_file(ckpt)), int(rec.get("steps", 0)), hp
    hp = {k: v for k, v in state["hyper_parameters"]["codec"]["init_args"].items() if k != "init_from"}

    def build():
        m = QResVAE(**hp)
        m.load_weights(read_state_dict(ckpt, loaded=state))
        return m.eval()

    return build, int(state.get("global_step", 0)), hp


def curve(model, images: list[np.ndarray]) -> list[dict]:
    """Mean bpp (ideal code length of the rounded latents) and PSNR-RGB per quality, and the bits of the blocks
    before the last scale (stride 4)."""
    import torch

    n_coarse = sum(model.blocks[:-1])
    out = []
    for lm in model.quality_lambdas():
        bpp, psnr, coarse = [], [], []
        for rgb in images:
            x = torch.from_numpy(np.ascontiguousarray(rgb).copy()).permute(2, 0, 1)[None].float() / 255
            h, w = x.shape[-2:]
            with torch.no_grad():
                r = model(model.pad(x), torch.tensor([lm]))
            bits = [float(-torch.log2(lik).sum()) / (h * w) for lik in r["likelihoods"]]
            bpp.append(sum(bits))
            coarse.append(sum(bits[:n_coarse]))
            psnr.append(psnr_of(r["x_hat"][..., :h, :w].clamp(0, 1).numpy(), x.numpy(), peak=1.0))
        out.append({"lambda": lm, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(psnr)),
                    "coarse_bpp": float(np.mean(coarse))})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpts", nargs="*", default=DEFAULT)
    ap.add_argument("--dataset", default="kodak")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--table", default=None,
                    help="also write the table to docs/results/tables/<dataset>_<TABLE>.md (the default checkpoints "
                         "write <dataset>_hvae_stages.md)")
    ap.add_argument("--against", default=None, metavar="RESULTS.json",
                    help="also give each row's BD-rate against this curve (a results JSON of the RD harness, e.g. "
                         "results/kodak-hvae/msh.json, the msh ladder from its files, written by reproduce.hvae)")
    ap.add_argument("--cache", default=None,
                    help="folder of measured curves, one per checkpoint content, dataset and image count (default "
                         "results/hvae_stages; a changed checkpoint file is measured again)")
    args = ap.parse_args(argv)
    import torch

    from codec.media.image import load_image

    torch.set_num_threads(1)
    missing = [c for c in args.ckpts if not Path(c).is_file()]
    if missing:
        print(f"hvae_stages: no checkpoint at {missing[0]} (make train-hvae; see this module's docstring)",
              file=sys.stderr)
        return 2
    anchor = None
    if args.against:
        from codec.eval.bd import load_results

        if not Path(args.against).is_file():
            print(f"hvae_stages: no results file at {args.against} (python -m codec.eval.reproduce.hvae writes "
                  f"results/kodak-hvae/msh.json)", file=sys.stderr)
            return 2
        anchor = load_results(args.against)
        anchor_name = anchor.get("name", Path(args.against).stem)
    ds = resolve(args.dataset, limit=args.limit)
    images = [load_image(p) for p in ds.items]
    rows, curves = [], {}
    cache = Path(args.cache) if args.cache else repo_root() / "results" / "hvae_stages"
    for ck in args.ckpts:
        raw = Path(ck).read_bytes()
        build, step, hp = load(Path(ck), raw)
        key = hashlib.sha256(raw + f"|{ds.name}|{len(images)}|curve-v1".encode()).hexdigest()[:24]
        hit = cache / f"{key}.json"
        if hit.is_file():
            c = json.loads(hit.read_text())
        else:
            c = curve(build(), images)
            cache.mkdir(parents=True, exist_ok=True)
            hit.write_text(json.dumps(c))
        curves[ck] = c
        ref = curves[args.ckpts[0]]
        bd = 0.0 if c == ref else bd_rate([p["bpp"] for p in ref], [p["psnr"] for p in ref],
                                          [p["bpp"] for p in c], [p["psnr"] for p in c])
        pts = " / ".join(f"{p['bpp']:.3f}, {p['psnr']:.2f}" for p in c)
        cols = [bd]
        if anchor is not None:
            cols.append(bd_rate(anchor["results"]["bpp"], anchor["results"]["psnr-rgb"], [p["bpp"] for p in c],
                                [p["psnr"] for p in c]))
        rows.append(f"| `{ck}` | {step} | {hp.get('prefix_drop', 0.0):g} | {pts} | "
                    f"{c[0]['coarse_bpp']:.3f} / {c[-1]['coarse_bpp']:.3f} | "
                    + " | ".join('n/a (a curve not monotone)' if v != v else f'{v:+.1f} %' for v in cols) + " |")
        print(rows[-1], flush=True)
    name = args.table or ("hvae_stages" if args.ckpts == DEFAULT else None)
    cmd = ("python -m codec.eval.reproduce.hvae_stages" + ("" if args.ckpts == DEFAULT else " " + " ".join(args.ckpts))
           + (f" --against {args.against}" if args.against else "") + (f" --table {args.table}" if args.table else ""))
    extra = "" if anchor is None else (
        f"; the last column is the BD-rate against `{args.against}` ({anchor_name}), over the PSNR range both reach "
        f"(that curve from its files, these from the ideal code length)")
    text = (f"Hierarchical VAE training checkpoints on {ds.name} ({len(images)} images): bpp is the ideal code length "
            f"of the rounded latents (not the files), PSNR-RGB in dB, at each of the checkpoint's qualities from the "
            f"lowest to the top; coarse bpp is what the blocks before stride 4 carry at the lowest / top quality; "
            f"BD-rate (PSNR) against the first row, over the PSNR range both reach{extra}. Regenerate: "
            f"`{cmd}`.\n\n"
            f"| checkpoint | steps of its stage | prefix_drop | bpp, PSNR at q1 / ... / top | coarse bpp q1 / top | "
            f"BD-rate |" + (" BD-rate vs the anchor |" if anchor is not None else "")
            + "\n|---|---:|---:|---|---:|---:|" + ("---:|" if anchor is not None else "") + "\n" + "\n".join(rows)
            + "\n")
    if name and not args.limit:
        _, tabs = results_dirs()
        (tabs / f"{ds.name}_{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
