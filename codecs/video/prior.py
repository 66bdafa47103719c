"""The learned temporal prior of P frames (float, for training; coding compiles it to integers)."""

from __future__ import annotations

import torch
import torch.nn as nn

from codec.errors import CodecError


class TemporalPrior(nn.Module):
    """(scales, means) of a P frame's latent from the hyperprior (mu_h, sigma_h) and the previous decoded latent.

    A few 3x3 convolutions at latent resolution (each latent pixel is 16x16 pixels, so three layers see +-48 px of
    motion; ``dilations`` widen that) output, per element, a gate ``g``, a mean correction ``d`` and a log-scale correction ``s``:
    ``mu = mu_h + sigmoid(g) * (y_prev - mu_h) + d`` and ``sigma = sigma_h * exp(s)``. The last layer starts at
    zero with the gate closed, so an untrained prior codes P frames like intra frames.
    """

    def __init__(self, M: int, width: int = 128, layers: int = 3, dilations: list | None = None):
        super().__init__()
        mods: list[nn.Module] = []
        c = 3 * M
        dil = list(dilations) if dilations else [1] * max(1, int(layers))
        if len(dil) != max(1, int(layers)) or min(dil) < 1:
            raise CodecError(f"dilations {dilations} must be {layers} positive integers")
        for d in dil:
            mods += [nn.Conv2d(c, width, 3, padding=int(d), dilation=int(d)), nn.LeakyReLU(0.1)]
            c = width
        self.body = nn.Sequential(*mods)
        self.head = nn.Conv2d(width, 3 * M, 1)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[:M].fill_(-4.0)

    def forward(self, y_prev: torch.Tensor, means_h: torch.Tensor, scales_h: torch.Tensor):
        diff = y_prev - means_h
        log_s = torch.log(scales_h.clamp_min(0.11))
        g, d, s = self.head(self.body(torch.cat([diff, means_h, log_s], 1))).chunk(3, 1)
        means = means_h + torch.sigmoid(g) * diff + d
        scales = scales_h * torch.exp(s.clamp(-6.0, 4.0))
        return scales, means
