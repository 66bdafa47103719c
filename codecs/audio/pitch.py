"""Pitch for the harmonic branch of the speech decoder: a YIN f0 tracker (encoder side), its quantisation to the
integer f0 track that the bitstream carries, and the harmonic oscillator bank that turns a decoded f0 track and
harmonic amplitudes into a waveform (decoder side).

Only the quantised track crosses the bitstream, so the tracker may use floats: the decoder never repeats it. The
oscillator bank is the final synthesis (nothing of it feeds back into decoding).

YIN: de Cheveigne and Kawahara, "YIN, a fundamental frequency estimator for speech and music", JASA 2002: the
cumulative-mean-normalised difference function of each frame, the first dip below a threshold (else the deepest),
refined by parabolic interpolation. A frame is voiced where that dip is below ``voicing``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def yin(x: torch.Tensor, sample_rate: int, hop: int, fmin: float = 60.0, fmax: float = 400.0,
        window: int = 1024, threshold: float = 0.25, voicing: float = 0.4) -> tuple[torch.Tensor, torch.Tensor]:
    """f0 [Hz] and voicing of frames centred on samples 0, hop, 2 hop, ... of ``x`` (B, T): ((B, F), (B, F) bool)
    with F = ceil(T / hop)."""
    x = x.float()
    b, t = x.shape
    frames = -(-t // hop)
    tau_min, tau_max = int(sample_rate // fmax), int(math.ceil(sample_rate / fmin))
    w = max(int(window), 2 * tau_max + 2)
    integ = w - tau_max
    xp = F.pad(x, (w // 2, w // 2 + frames * hop - t))
    fr = xp.unfold(-1, w, hop)[:, :frames]  # (B, F, w)
    fr = fr - fr.mean(-1, keepdim=True)
    a = fr[..., :integ]
    n = 1 << (2 * w - 1).bit_length()
    r = torch.fft.irfft(torch.fft.rfft(fr, n) * torch.fft.rfft(a, n).conj(), n)[..., :tau_max + 1]
    sq = F.pad(fr.pow(2).cumsum(-1), (1, 0))
    e_tau = sq[..., integ:integ + tau_max + 1] - sq[..., :tau_max + 1]  # sum of fr[j + tau]^2, j < integ
    d = (sq[..., integ:integ + 1] + e_tau - 2 * r).clamp_min(0)
    taus = torch.arange(tau_max + 1, device=x.device, dtype=x.dtype)
    cum = d[..., 1:].cumsum(-1)
    dn = torch.ones_like(d)
    dn[..., 1:] = d[..., 1:] * taus[1:] / cum.clamp_min(1e-12)
    dn[..., :tau_min] = 2.0  # outside the f0 range
    below = dn < threshold
    first = torch.where(below.any(-1), below.float().argmax(-1), dn.argmin(-1))
    for _ in range(tau_max):  # walk down to the local minimum after the first dip
        nxt = (first + 1).clamp(max=tau_max)
        step = dn.gather(-1, nxt[..., None])[..., 0] < dn.gather(-1, first[..., None])[..., 0]
        if not bool(step.any()):
            break
        first = torch.where(step, nxt, first)
    lo, hi = (first - 1).clamp(min=0), (first + 1).clamp(max=tau_max)
    y0, y1, y2 = (dn.gather(-1, i[..., None])[..., 0] for i in (lo, first, hi))
    den = y0 - 2 * y1 + y2
    shift = torch.where(den.abs() > 1e-9, 0.5 * (y0 - y2) / den, torch.zeros_like(den)).clamp(-0.5, 0.5)
    tau = first.to(x.dtype) + shift
    f0 = sample_rate / tau.clamp_min(1.0)
    voiced = (y1 < voicing) & (first >= tau_min) & (first < tau_max) & (fr.pow(2).mean(-1) > 1e-8)
    return f0, voiced


class F0Quantizer:
    """f0 <-> integer symbols: 0 = unvoiced, 1..bins-1 log-spaced over [fmin, fmax]."""

    def __init__(self, bins: int = 256, fmin: float = 60.0, fmax: float = 400.0):
        self.bins, self.fmin, self.fmax = int(bins), float(fmin), float(fmax)
        self.step = math.log2(self.fmax / self.fmin) / (self.bins - 2)

    def encode(self, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        q = torch.round(torch.log2(f0.clamp(self.fmin, self.fmax) / self.fmin) / self.step).long() + 1
        return torch.where(voiced, q.clamp(1, self.bins - 1), torch.zeros_like(q))

    def decode(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f0 [Hz] with unvoiced frames filled by the nearest voiced frame's f0, voiced mask)."""
        idx = idx.long()
        voiced = idx > 0
        f0 = self.fmin * torch.exp2((idx.clamp_min(1) - 1).double() * self.step)
        return fill_unvoiced(f0, voiced).float(), voiced


def fill_unvoiced(f0: torch.Tensor, voiced: torch.Tensor, default: float = 120.0) -> torch.Tensor:
    """Unvoiced frames take the previous voiced frame's f0 (leading ones the first voiced frame's; none voiced:
    ``default``), so the oscillators glide nowhere while their amplitudes fade."""
    n = f0.shape[-1]
    pos = torch.arange(n, device=f0.device).expand_as(f0)
    last = torch.where(voiced, pos, torch.full_like(pos, -1)).cummax(-1).values
    first = torch.where(voiced, pos, torch.full_like(pos, n)).flip(-1).cummin(-1).values.flip(-1)
    src = torch.where(last >= 0, last, first).clamp(max=n - 1)
    out = f0.gather(-1, src)
    return torch.where(voiced.any(-1, keepdim=True), out, torch.full_like(out, default))


def frame_phase(f0: torch.Tensor, sample_rate: int, hop: int) -> torch.Tensor:
    """Oscillator phase (cycles, modulo 1, float64) at the start of each frame of an f0 track (..., F) whose f0 is
    linear between frame starts: the phase a chunk of frames starts from, so chunked synthesis equals whole-signal
    synthesis."""
    f = f0.double()
    inc = (f + torch.cat([f[..., 1:], f[..., -1:]], -1)) * (hop / (2.0 * sample_rate))
    return torch.remainder(F.pad(inc.cumsum(-1), (1, 0))[..., :-1], 1.0)


def harmonic_bank(f0: torch.Tensor, amps: torch.Tensor, phase0: torch.Tensor, sample_rate: int,
                  hop: int) -> torch.Tensor:
    """Sum of harmonics h = 1..H of f0: ``f0`` (B, F + 1) Hz (the frame after the last, for interpolation),
    ``amps`` (B, H, F + 1) amplitudes, ``phase0`` (B,) start phase in cycles -> (B, F * hop). f0 and amplitudes are
    linear between frame starts; harmonics at or above 0.48 of the sample rate are silent."""
    b, h, f1 = amps.shape
    f = f1 - 1
    s = torch.arange(hop, device=f0.device, dtype=torch.float64) / hop  # (hop,)
    fa, fb = f0[:, :-1].double(), f0[:, 1:].double()
    # phase in cycles within each frame: integral of the linear f0
    inc = (fa[..., None] * s + 0.5 * (fb - fa)[..., None] * s * s) * (hop / sample_rate)  # (B, F, hop)
    start = phase0.double()[:, None] + frame_phase(f0, sample_rate, hop)[:, :f]
    ph = torch.remainder(start[..., None] + inc, 1.0).reshape(b, f * hop).to(amps.dtype)  # (B, T)
    f0s = (fa[..., None] + (fb - fa)[..., None] * s).reshape(b, f * hop).to(amps.dtype)
    a = F.interpolate(amps, size=f * hop + 1, mode="linear", align_corners=True)[..., :-1]  # (B, H, T)
    k = torch.arange(1, h + 1, device=amps.device, dtype=amps.dtype)[None, :, None]
    a = a * (k * f0s[:, None] < 0.48 * sample_rate)
    return (a * torch.sin(2 * math.pi * torch.remainder(k * ph[:, None], 1.0))).sum(1)
