"""The wavelet packet transform (WPT) of WaLLoC, in PyTorch, with the filters of PyWavelets.

One level splits every channel into a low-pass and a high-pass half-rate channel (1D), or, separably along width
then height, into four quarter-size channels (2D). The *packet* transform splits every subband again at each level,
so J levels turn C channels into ``C * 2**J`` (1D) or ``C * 4**J`` (2D) channels at ``1 / 2**J`` of the resolution:
the same number of values, re-arranged into time-frequency (or space-frequency) channels.

Boundary handling is periodization (circular), as ``pywt.dwt(..., mode="periodization")``: a length-L signal gives
exactly L/2 coefficients per band, and analysis followed by synthesis reconstructs the input to float precision for
biorthogonal filters (``bior4.4``, the CDF 9/7 pair, is WaLLoC's default). Sizes must be multiples of ``2**J``; the
codecs pad to that and crop back.

Channel order: level by level, channel ``c`` becomes ``2c`` (low) and ``2c + 1`` (high) in 1D, and
``4c + 2a + b`` in 2D with ``a`` the vertical and ``b`` the horizontal band (0 = low, 1 = high). Channel 0 of the
output is the DC (all low-pass) band of input channel 0.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.errors import CodecError


def wavelet_filters(name: str):
    """(dec_lo, dec_hi, rec_lo, rec_hi) of a PyWavelets wavelet, padded to one even length."""
    try:
        import pywt
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise CodecError("the wavelet codecs need PyWavelets (pip install PyWavelets)") from e
    try:
        w = pywt.Wavelet(name)
    except ValueError:
        raise CodecError(f"unknown wavelet {name!r} (see pywt.wavelist(kind='discrete'))") from None
    filt = [list(f) for f in (w.dec_lo, w.dec_hi, w.rec_lo, w.rec_hi)]
    k = max(len(f) for f in filt)
    k += k % 2
    if any(len(f) != k for f in filt):
        raise CodecError(f"wavelet {name!r} has filters of different lengths")
    return filt


class WaveletPacket(nn.Module):
    """Forward (:meth:`analysis`) and inverse (:meth:`synthesis`) J-level wavelet packet transform, 1D or 2D.

    1D inputs are (B, C, L); 2D inputs are (B, C, H, W). The transform is linear and differentiable.
    """

    def __init__(self, J: int, ndim: int = 2, wavelet: str = "bior4.4"):
        super().__init__()
        if ndim not in (1, 2):
            raise CodecError(f"the wavelet packet transform is 1D or 2D, not {ndim}D")
        if not 0 <= int(J) <= 12:
            raise CodecError(f"J must be in 0..12, got {J}")
        self.J, self.ndim, self.wavelet = int(J), int(ndim), wavelet
        dec_lo, dec_hi, rec_lo, rec_hi = wavelet_filters(wavelet)
        self.K = len(dec_lo)
        # analysis is a correlation with the reversed decomposition filters; synthesis a transposed convolution
        self.register_buffer("dec", torch.tensor([dec_lo[::-1], dec_hi[::-1]], dtype=torch.float64)[:, None],
                             persistent=False)
        self.register_buffer("rec", torch.tensor([rec_lo, rec_hi], dtype=torch.float64)[:, None], persistent=False)
        self.shift = self.K // 2 - 1

    @property
    def factor(self) -> int:
        """Downsampling per dimension (``2**J``)."""
        return 1 << self.J

    def channels(self, c: int) -> int:
        return c * (2 ** self.J if self.ndim == 1 else 4 ** self.J)

    # -- one 1D level along the last axis of (N, L) ------------------------------------------------------------
    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length = x.shape
        idx = torch.arange(-self.shift, length + self.K - self.shift - 2, device=x.device) % length
        y = F.conv1d(x[:, idx].unsqueeze(1), self.dec.to(x.dtype), stride=2)
        return y[..., : length // 2]  # (N, 2, L/2)

    def _merge(self, c: torch.Tensor) -> torch.Tensor:
        n, _, half = c.shape
        length = 2 * half
        y = F.conv_transpose1d(c, self.rec.to(c.dtype), stride=2)[:, 0]  # (N, L - 2 + K)
        idx = (torch.arange(y.shape[-1], device=c.device) - self.shift) % length
        return torch.zeros(n, length, dtype=c.dtype, device=c.device).index_add_(1, idx, y)

    # -- packet levels --------------------------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != self.ndim + 2:
            raise CodecError(f"{self.ndim}D wavelet packet transform needs a {self.ndim + 2}-D tensor, got "
                             f"shape {tuple(x.shape)}")
        if any(s % self.factor for s in x.shape[2:]):
            raise CodecError(f"sizes {tuple(x.shape[2:])} must be multiples of 2**J = {self.factor}")

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        for _ in range(self.J):
            if self.ndim == 1:
                b, c, length = x.shape
                x = self._split(x.reshape(b * c, length)).reshape(b, 2 * c, length // 2)
            else:
                b, c, h, w = x.shape
                y = self._split(x.reshape(b * c * h, w)).reshape(b, c, h, 2, w // 2)       # along width
                y = y.permute(0, 1, 3, 4, 2).reshape(b * c * 2 * (w // 2), h)
                y = self._split(y).reshape(b, c, 2, w // 2, 2, h // 2)                      # along height
                x = y.permute(0, 1, 4, 2, 5, 3).reshape(b, 4 * c, h // 2, w // 2)           # (a, b) band order
        return x

    def synthesis(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() != self.ndim + 2:
            raise CodecError(f"{self.ndim}D inverse wavelet packet transform needs a {self.ndim + 2}-D tensor, "
                             f"got shape {tuple(X.shape)}")
        per = 2 if self.ndim == 1 else 4
        if X.shape[1] % (per ** self.J):
            raise CodecError(f"{X.shape[1]} channels are not a multiple of {per ** self.J}")
        for _ in range(self.J):
            if self.ndim == 1:
                b, c2, half = X.shape
                X = self._merge(X.reshape(b * (c2 // 2), 2, half)).reshape(b, c2 // 2, 2 * half)
            else:
                b, c4, h, w = X.shape
                c = c4 // 4
                y = X.reshape(b, c, 2, 2, h, w).permute(0, 1, 3, 5, 2, 4)    # b c bw w a h
                y = self._merge(y.reshape(b * c * 2 * w, 2, h)).reshape(b, c, 2, w, 2 * h)
                y = y.permute(0, 1, 4, 2, 3).reshape(b * c * 2 * h, 2, w)      # b c H bw w
                X = self._merge(y).reshape(b, c, 2 * h, 2 * w)
        return X
