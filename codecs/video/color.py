"""Colour for the video codec: 4:2:0 YCbCr (BT.601, limited range) <-> RGB in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------------------------
# colour: 4:2:0 YCbCr (BT.601 limited range) <-> RGB in [0, 1]
# --------------------------------------------------------------------------------------------------------------
_KR, _KB = 0.299, 0.114
_KG = 1 - _KR - _KB


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float32 RGB (nominally [0, 1], not clipped) from uint8 4:2:0 planes."""
    h, w = y.shape
    Y = (torch.from_numpy(np.asarray(y, dtype=np.float32)) - 16.0) / 219.0
    uv = torch.from_numpy(np.stack([u, v]).astype(np.float32))
    uv = ((uv - 128.0) / 224.0).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :h, :w]
    cb, cr = uv[0], uv[1]
    r = Y + 2 * (1 - _KR) * cr
    b = Y + 2 * (1 - _KB) * cb
    g = (Y - _KR * r - _KB * b) / _KG
    return torch.stack([r, g, b])[None]


def rgb_to_yuv420(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 4:2:0 planes from (1, 3, H, W) RGB (chroma: mean over each 2x2 block, edges replicated)."""
    r, g, b = x[0, 0], x[0, 1], x[0, 2]
    Y = _KR * r + _KG * g + _KB * b
    cb = (b - Y) / (2 * (1 - _KB))
    cr = (r - Y) / (2 * (1 - _KR))
    h, w = Y.shape
    c = torch.stack([cb, cr])[None]
    if h % 2 or w % 2:
        c = F.pad(c, (0, w % 2, 0, h % 2), mode="replicate")
    c = F.avg_pool2d(c, 2)[0]
    yy = (Y * 219.0 + 16.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    cc = (c * 224.0 + 128.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return yy, cc[0], cc[1]
