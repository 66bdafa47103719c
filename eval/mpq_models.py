"""Perception models for MPQ that are trained here (no download): a small CIFAR-10 CNN.

    python -m codec.eval.mpq_models [--epochs 20] [--seed 0]      # trains it and ships checkpoints/mpq-cifar10-cnn.pt

Data: the CIFAR-10 test split in ../shared/data (the only CIFAR-10 here), split by class into 8,000 training and
2,000 held-out images (the same split as the WaLLoC compressed-learning experiment). The CNN (about 0.16 M
parameters: three conv blocks 24/48/96 with batch norm, global average pooling, a linear layer) trains with random
crops (pad 4) and horizontal flips, SGD with momentum and a cosine schedule, on the CPU in minutes. The file is a
plain state_dict (``torch.load(weights_only=True)``); the manifest's ``perception`` list records its sha256, data,
epochs and held-out accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn

from codec.errors import CheckpointError

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)
NAME = "mpq-cifar10-cnn"


def load_cifar():
    from codec.eval.reproduce.walloc_cifar import load_cifar as _load

    return _load()


def cifar_split(y: np.ndarray):
    from codec.eval.reproduce.walloc_cifar import split

    return split(y)


def cifar_preprocess(images: np.ndarray) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 RGB -> normalised (N, 3, 32, 32) float: the same for clean and decoded input."""
    x = (np.asarray(images, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


class CifarCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                 nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(3, 24), nn.MaxPool2d(2), block(24, 48), nn.MaxPool2d(2), block(48, 96),
                                      nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(96, classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def load_cifar_cnn():
    """(model in eval mode, manifest entry) of the shipped CIFAR-10 CNN; the file's sha256 is checked."""
    from codec.checkpoints import checkpoints_dir, load_manifest, sha256_file

    entry = next((e for e in load_manifest().get("perception", []) if e.get("name") == NAME), None)
    if entry is None:
        raise CheckpointError(f"no {NAME} in the manifest's perception models; train it with "
                              "`python -m codec.eval.mpq_models`")
    p = checkpoints_dir() / entry["file"]
    if not p.is_file() or sha256_file(p) != entry.get("sha256"):
        raise CheckpointError(f"{p} is missing or does not match its sha256 in the manifest")
    model = CifarCNN()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in torch.load(p, map_location="cpu", weights_only=True).items()})
    return model.eval(), entry


def train(epochs: int = 20, seed: int = 0, batch: int = 128) -> dict:
    from codec.checkpoints import checkpoints_dir, load_manifest, sha256_file, write_manifest

    torch.manual_seed(seed)
    np.random.seed(seed)
    x, y, classes = load_cifar()
    tr, te = cifar_split(y)
    xtr, ytr = cifar_preprocess(x[tr]), torch.from_numpy(y[tr]).long()
    xte, yte = cifar_preprocess(x[te]), torch.from_numpy(y[te]).long()
    model = CifarCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * (len(tr) // batch)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(tr))
        for b in range(len(tr) // batch):
            idx = perm[b * batch:(b + 1) * batch]
            xb = nn.functional.pad(xtr[idx], (4, 4, 4, 4), mode="reflect")
            i, j = np.random.randint(0, 9, 2)
            xb = xb[:, :, i:i + 32, j:j + 32]
            flip = torch.rand(len(idx)) < 0.5
            xb[flip] = xb[flip].flip(3)
            loss = nn.functional.cross_entropy(model(xb), ytr[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sch.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(xte).argmax(1) == yte).float().mean())
        print(f"epoch {ep + 1}/{epochs}: loss {loss.item():.3f}, held-out accuracy {acc:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    out = checkpoints_dir() / f"{NAME}.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, out)
    model = CifarCNN()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in torch.load(out, weights_only=True).items()})
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    entry = {"name": NAME, "task": "cifar10 classification", "file": out.name, "sha256": sha256_file(out),
             "bytes": out.stat().st_size, "params": int(sum(p.numel() for p in model.parameters())),
             "training": {"data": "images/cifar10_test.zip, 800 images per class (8,000)", "held_out": "2,000 (the "
                          "rest of each class)", "epochs": epochs, "batch": batch, "seed": seed,
                          "augmentation": "random crop (reflect pad 4), horizontal flip",
                          "optimizer": "SGD nesterov 0.9, one-cycle lr 0.1, weight decay 5e-4, label smoothing 0.1",
                          "train_seconds": round(time.time() - t0, 1), "hardware": f"CPU, {torch.get_num_threads()} "
                          "threads", "held_out_accuracy": round(acc, 4), "classes": classes}}
    m = load_manifest()
    m["perception"] = [e for e in m.get("perception", []) if e.get("name") != NAME] + [entry]
    write_manifest(m)
    return entry


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(train(args.epochs, args.seed), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
