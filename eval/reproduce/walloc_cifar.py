"""Compressed-domain learning, shown small (the point of the WaLLoC paper): the same small classifier trained on
WaLLoC latents and on pixels resized to the same number of values.

    python -m codec.eval.reproduce.walloc_cifar [--epochs 60] [--seed 0]

Data: the CIFAR-10 test split in ../shared/data (10,000 32x32 images; the only CIFAR-10 here), split by class into
8,000 images for training and 2,000 held out. Inputs, each standardised per feature on the training part:
  - ``walloc``: the integer latents of the shipped RGB model (12 x 4 x 4 = 192 values per image: J=3 wavelet
    packet levels + 1x1 encoder, 16x fewer values than the 3 x 32 x 32 pixels);
  - ``pixels 8x8``: the image resized to 8 x 8 RGB (Pillow, bicubic with antialiasing) = 192 values;
  - ``pixels 32x32``: the full 3,072 pixels, for reference.
Classifier: the same MLP for every input (192 or 3,072 -> 512 -> 512 -> 10, ReLU, dropout 0.2), Adam 1e-3, batch
128, the same epochs and seed. Writes docs/results/tables/walloc_cifar.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile

import numpy as np
import torch
import torch.nn as nn

from codec.config import data_path, repo_root


def load_cifar():
    from io import BytesIO

    from PIL import Image

    p = data_path("images", "cifar10_test.zip")
    if not p.is_file():
        from codec.errors import MediaError

        raise MediaError(f"CIFAR-10 archive not found: {p} (set CODEC_DATA to the shared data folder)")
    imgs, labels = [], []
    with zipfile.ZipFile(p) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith((".jpg", ".png")))
        for n in names:
            cls = n.split("/")[-2]
            imgs.append(np.asarray(Image.open(BytesIO(z.read(n))).convert("RGB")))
            labels.append(cls)
    order = sorted(set(labels))
    y = np.array([order.index(c) for c in labels])
    return np.stack(imgs), y, order


def split(y: np.ndarray, train_per_class: int = 800):
    tr, te = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        tr += list(idx[:train_per_class])
        te += list(idx[train_per_class:])
    return np.array(tr), np.array(te)


def features(imgs: np.ndarray, kind: str, model=None) -> np.ndarray:
    from PIL import Image

    if kind == "walloc":
        out = []
        for i in range(0, len(imgs), 500):
            x = torch.from_numpy(imgs[i:i + 500]).permute(0, 3, 1, 2).float() / 255
            out.append(model.latent_symbols(x).reshape(len(x), -1).astype(np.float32))
        return np.concatenate(out)
    if kind == "pixels8":
        return np.stack([np.asarray(Image.fromarray(a).resize((8, 8), Image.BICUBIC), dtype=np.float32)
                         .transpose(2, 0, 1).reshape(-1) for a in imgs])
    return imgs.transpose(0, 3, 1, 2).reshape(len(imgs), -1).astype(np.float32)


def train_eval(xtr, ytr, xte, yte, epochs: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = torch.from_numpy((xtr - mu) / sd), torch.from_numpy((xte - mu) / sd)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    net = nn.Sequential(nn.Linear(xtr.shape[1], 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 512), nn.ReLU(),
                        nn.Dropout(0.2), nn.Linear(512, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            b = perm[i:i + 128]
            loss = nn.functional.cross_entropy(net(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(xte).argmax(1) == yte).float().mean())
    return acc, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="walloc-rgb16x")
    ap.add_argument("--limit", type=int, default=None, help="use only this many images (a quick check)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    from codec.checkpoints import load_model

    model = load_model(args.model, None, "image")
    imgs, y, classes = load_cifar()
    if args.limit:
        keep = np.concatenate([np.flatnonzero(y == c)[: args.limit // 10] for c in range(10)])
        imgs, y = imgs[keep], y[keep]
    tr, te = split(y, train_per_class=int(0.8 * np.bincount(y).min()))
    rows = []
    for kind, label in (("walloc", f"WaLLoC latents ({args.model})"), ("pixels8", "pixels resized to 8x8"),
                        ("pixels32", "pixels 32x32 (reference)")):
        t0 = time.perf_counter()
        f = features(imgs, kind, model)
        prep = time.perf_counter() - t0
        acc, secs = train_eval(f[tr], y[tr], f[te], y[te], args.epochs, args.seed)
        shape = {"walloc": f"{model.latent_dim} x 4 x 4", "pixels8": "3 x 8 x 8", "pixels32": "3 x 32 x 32"}[kind]
        rows.append({"input": label, "shape": shape, "values": int(f.shape[1]), "accuracy": acc,
                     "train_s": secs, "features_s": prep})
        print(json.dumps(rows[-1]), flush=True)
    out = repo_root() / "docs" / "results" / "tables" / "walloc_cifar.md"
    if not args.limit:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w") as fh:
            fh.write(f"CIFAR-10 ({len(tr)} training / {len(te)} held-out images from the test split), the same MLP, "
                     f"{args.epochs} epochs, seed {args.seed}:\n\n| input | shape | values | accuracy | train s |\n"
                     "|---|---|---:|---:|---:|\n")
            for r in rows:
                fh.write(f"| {r['input']} | {r['shape']} | {r['values']} | {100 * r['accuracy']:.1f} % | "
                         f"{r['train_s']:.0f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
