"""Building blocks of the RVQGAN codec (the Improved RVQGAN / DAC design, Kumar et al. 2023).

Generator: weight-normalised 1-D convolutions, Snake activations, residual units with dilations 1, 3, 9, strided
down-sampling in the encoder and transposed-convolution up-sampling in the decoder. Residual vector quantisation
with factorised (low-dimensional) codes and L2-normalised nearest-neighbour lookup, commitment and codebook losses,
and quantizer dropout. Discriminators: multi-period (waveform reshaped to 2-D by period) and multi-band
multi-resolution STFT. All of them take any number of channels jointly (the multichannel input/output layers of
"Compression of Higher Order Ambisonics with Multichannel RVQGAN"), not channel by channel.

Differences from DAC 1.0.0, on purpose: transposed convolutions with odd strides get ``output_padding`` so every
decoder block returns exactly ``stride`` times its input length (DAC loses samples there), and the codec pads the
input to a multiple of the hop and crops the output, so output length = input length for any input length.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from codec.codecs.audio.pitch import harmonic_bank


def WNConv1d(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.Conv1d(*args, **kwargs))


def WNConvTranspose1d(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.ConvTranspose1d(*args, **kwargs))


def WNConv2d(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.Conv2d(*args, **kwargs))


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


class Snake1d(nn.Module):
    """x + sin^2(alpha x) / alpha with a learned alpha per channel (Ziyin et al. 2020)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x):
        return snake(x, self.alpha)


class ResidualUnit(nn.Module):
    def __init__(self, dim: int, dilation: int = 1):
        super().__init__()
        pad = 3 * dilation
        self.block = nn.Sequential(Snake1d(dim), WNConv1d(dim, dim, 7, dilation=dilation, padding=pad),
                                   Snake1d(dim), WNConv1d(dim, dim, 1))

    def forward(self, x):
        return x + self.block(x)


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, stride: int):
        super().__init__()
        h = dim // 2
        self.block = nn.Sequential(ResidualUnit(h, 1), ResidualUnit(h, 3), ResidualUnit(h, 9), Snake1d(h),
                                   WNConv1d(h, dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2)))

    def forward(self, x):
        return self.block(x)


class Encoder(nn.Module):
    """(B, C, T) with T a multiple of prod(rates) -> (B, latent_dim, T / prod(rates))."""

    def __init__(self, channels: int, d_model: int, rates: list[int], latent_dim: int):
        super().__init__()
        layers = [WNConv1d(channels, d_model, 7, padding=3)]
        d = d_model
        for s in rates:
            d *= 2
            layers.append(EncoderBlock(d, s))
        layers += [Snake1d(d), WNConv1d(d, latent_dim, 3, padding=1)]
        self.block = nn.Sequential(*layers)
        self.enc_dim = d

    def forward(self, x):
        return self.block(x)


class DecoderBlock(nn.Module):
    def __init__(self, din: int, dout: int, stride: int):
        super().__init__()
        p = math.ceil(stride / 2)
        self.block = nn.Sequential(
            Snake1d(din),
            # output_padding makes the length exactly stride * T for odd strides too (DAC 1.0.0 loses samples)
            WNConvTranspose1d(din, dout, 2 * stride, stride=stride, padding=p, output_padding=2 * p - stride),
            ResidualUnit(dout, 1), ResidualUnit(dout, 3), ResidualUnit(dout, 9))

    def forward(self, x):
        return self.block(x)


class Decoder(nn.Module):
    """(B, latent_dim, F) -> (B, C, F * prod(rates)), tanh output."""

    def __init__(self, latent_dim: int, channels: int, d_model: int, rates: list[int]):
        super().__init__()
        layers = [WNConv1d(latent_dim, d_model, 7, padding=3)]
        d = d_model
        for s in rates:
            layers.append(DecoderBlock(d, d // 2, s))
            d //= 2
        layers += [Snake1d(d), WNConv1d(d, channels, 7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


# --------------------------------------------------------------------------------------------------------------
# residual vector quantisation
# --------------------------------------------------------------------------------------------------------------
class VectorQuantize(nn.Module):
    """One factorised codebook: project to ``codebook_dim``, nearest L2-normalised code, project back."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.codebook_size, self.codebook_dim = codebook_size, codebook_dim
        self.in_proj = WNConv1d(input_dim, codebook_dim, 1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, 1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """Nearest code of each frame of the projected latent (B, D, T) -> (B, T) (cosine similarity)."""
        enc = F.normalize(z_e.transpose(1, 2).reshape(-1, self.codebook_dim), dim=1)
        cb = F.normalize(self.codebook.weight, dim=1)
        return (enc @ cb.t()).argmax(1).view(z_e.size(0), z_e.size(2))

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) codes -> (B, codebook_dim, T)."""
        return self.codebook(idx).transpose(1, 2)

    def forward(self, z: torch.Tensor):
        z_e = self.in_proj(z)
        idx = self.indices(z_e)
        z_q = self.lookup(idx)
        commitment = F.mse_loss(z_e, z_q.detach(), reduction="none").mean([1, 2])
        codebook = F.mse_loss(z_q, z_e.detach(), reduction="none").mean([1, 2])
        z_q = z_e + (z_q - z_e).detach()  # straight-through
        return self.out_proj(z_q), idx, commitment, codebook


class ResidualVectorQuantize(nn.Module):
    def __init__(self, input_dim: int, n_codebooks: int, codebook_size: int, codebook_dim: int,
                 quantizer_dropout: float = 0.5):
        super().__init__()
        self.n_codebooks, self.codebook_size, self.quantizer_dropout = n_codebooks, codebook_size, quantizer_dropout
        self.quantizers = nn.ModuleList(VectorQuantize(input_dim, codebook_size, codebook_dim)
                                        for _ in range(n_codebooks))

    def forward(self, z: torch.Tensor, n_q: int | None = None):
        """Returns (z_q, codes (B, n_q, T), commitment loss, codebook loss). In training, quantizer dropout codes
        a random prefix of the codebooks for a ``quantizer_dropout`` fraction of the batch."""
        b = z.size(0)
        n_q = self.n_codebooks if n_q is None else n_q
        if self.training and self.quantizer_dropout > 0:
            keep = torch.full((b,), n_q, device=z.device)
            k = int(b * self.quantizer_dropout)
            if k:
                keep[:k] = torch.randint(1, n_q + 1, (k,), device=z.device)
        else:
            keep = None
        z_q = torch.zeros_like(z)
        residual = z
        codes, commit, cbl = [], z.new_zeros(()), z.new_zeros(())
        for i, q in enumerate(self.quantizers[:n_q]):
            zi, idx, c1, c2 = q(residual)
            if keep is None:
                z_q = z_q + zi
                commit, cbl = commit + c1.mean(), cbl + c2.mean()
            else:
                m = (i < keep).to(z.dtype)
                z_q = z_q + zi * m[:, None, None]
                commit, cbl = commit + (c1 * m).mean(), cbl + (c2 * m).mean()
            residual = residual - zi
            codes.append(idx)
        return z_q, torch.stack(codes, 1), commit, cbl

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, n_q, T) integer codes -> the quantised latent (sum over the first n_q codebooks)."""
        out = 0
        for i in range(codes.size(1)):
            q = self.quantizers[i]
            out = out + q.out_proj(q.lookup(codes[:, i]))
        return out


# --------------------------------------------------------------------------------------------------------------
# discriminators
# --------------------------------------------------------------------------------------------------------------
class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: int, width: int):
        super().__init__()
        self.period = period
        w = [channels, width, 4 * width, 16 * width, 32 * width, 32 * width]
        self.convs = nn.ModuleList(
            WNConv2d(w[i], w[i + 1], (5, 1), (3, 1) if i < 4 else (1, 1), padding=(2, 0)) for i in range(5))
        self.post = WNConv2d(w[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, x):
        t = x.shape[-1]
        x = F.pad(x, (0, (-t) % self.period), mode="reflect")
        x = x.view(x.size(0), x.size(1), -1, self.period)
        fmaps = []
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
            fmaps.append(x)
        fmaps.append(self.post(x))
        return fmaps


BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


class BandSTFTDiscriminator(nn.Module):
    """Complex STFT at one resolution, split into frequency bands, a 2-D conv stack per band (DAC's MRD)."""

    def __init__(self, window: int, channels: int, width: int):
        super().__init__()
        self.window = window
        self.register_buffer("win", torch.hann_window(window), persistent=False)
        nb = window // 2 + 1
        self.bands = [(int(a * nb), int(b * nb)) for a, b in BANDS]

        def stack():
            return nn.ModuleList([WNConv2d(2 * channels, width, (3, 9), padding=(1, 4))] +
                                 [WNConv2d(width, width, (3, 9), (1, 2), padding=(1, 4)) for _ in range(3)] +
                                 [WNConv2d(width, width, (3, 3), padding=(1, 1))])

        self.stacks = nn.ModuleList(stack() for _ in self.bands)
        self.post = WNConv2d(width, 1, (3, 3), padding=(1, 1))

    def forward(self, x):
        b, c, t = x.shape
        s = torch.stft(x.reshape(b * c, t), self.window, self.window // 4, window=self.win, return_complex=True)
        s = torch.view_as_real(s)  # (B*C, F, frames, 2)
        s = s.view(b, c, *s.shape[1:]).permute(0, 1, 4, 3, 2).reshape(b, 2 * c, s.shape[2], s.shape[1])
        fmaps, outs = [], []
        for (lo, hi), stack in zip(self.bands, self.stacks):
            h = s[..., lo:hi]
            for conv in stack:
                h = F.leaky_relu(conv(h), 0.1)
                fmaps.append(h)
            outs.append(h)
        h = self.post(torch.cat(outs, -1))
        fmaps.append(h)
        return fmaps


class Discriminator(nn.Module):
    """Multi-period (periods 2, 3, 5, 7, 11) + multi-band multi-resolution STFT discriminators (DAC)."""

    def __init__(self, channels: int, periods=(2, 3, 5, 7, 11), windows=(2048, 1024, 512), mpd_width: int = 32,
                 mrd_width: int = 32):
        super().__init__()
        self.discs = nn.ModuleList([PeriodDiscriminator(p, channels, mpd_width) for p in periods] +
                                   [BandSTFTDiscriminator(w, channels, mrd_width) for w in windows])

    def forward(self, x):
        return [d(x) for d in self.discs]


# --------------------------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------------------------
class MelLoss(nn.Module):
    """DAC's multi-scale mel loss: L1 between log10 mel magnitudes (clamped at 1e-5) at windows 32..2048 with
    5..320 mel bands; the same definition as :func:`codec.eval.metrics.mel_distance` (summed over scales)."""

    def __init__(self, sample_rate: int, windows=(32, 64, 128, 256, 512, 1024, 2048), mels=(5, 10, 20, 40, 80, 160, 320)):
        super().__init__()
        import torchaudio

        self.mels = nn.ModuleList(
            torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate, n_fft=w, win_length=w, hop_length=w // 4, n_mels=n, power=1.0,
                window_fn=torch.hann_window, center=True, norm="slaney", mel_scale="slaney")
            for w, n in zip(windows, mels))
        for b in self.buffers():
            b.requires_grad_(False)

    def forward(self, x, y):
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        loss = x.new_zeros(())
        for m in self.mels:
            loss = loss + (torch.log10(m(x).clamp(min=1e-5)) - torch.log10(m(y).clamp(min=1e-5))).abs().mean()
        return loss


# --------------------------------------------------------------------------------------------------------------
# Vocos-style decoder: a ConvNeXt backbone at the frame rate and an inverse-STFT head
# --------------------------------------------------------------------------------------------------------------
class ConvNeXtBlock1d(nn.Module):
    """Depth-wise conv (kernel 7) -> LayerNorm -> pointwise MLP (x3, GELU) -> layer scale -> residual (Vocos)."""

    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1, self.pw2 = nn.Linear(dim, 3 * dim), nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x):
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class VocosDecoder(nn.Module):
    """(B, latent_dim, F) -> (B, C, F * hop): a ConvNeXt backbone at the frame rate predicts, per frame and
    channel, the log-magnitude and phase of an STFT (window ``n_fft``, hop ``hop``), inverted by ``torch.istft``
    (Siuzdak, "Vocos", 2023). Every layer runs at the frame rate, so it costs a fraction of an up-sampling
    decoder, and the phase is predicted outright rather than built up by transposed convolutions.

    Frame i is centred on sample i * hop; the output has exactly F * hop samples (``length`` of the iSTFT). Its
    receptive field is 3 + 3 * layers frames of latents plus n_fft / (2 hop) frames of overlap-add on each side.

    ``istft_hop`` (a divisor of ``hop``) lets the head predict ``hop / istft_hop`` STFT frames per latent frame,
    so the iSTFT's window (``n_fft``) can be shorter than four latent frames: finer time resolution from the same
    backbone. Sub-frame k of latent frame i is centred on sample i * hop + k * istft_hop."""

    def __init__(self, latent_dim: int, channels: int, dim: int, layers: int, hop: int, n_fft: int,
                 f0: bool = False, harmonics: int = 0, bands: int = 64, sample_rate: int = 16000,
                 istft_hop: int | None = None):
        super().__init__()
        self.istft_hop = int(istft_hop or hop)
        if self.istft_hop < 1 or hop % self.istft_hop:
            raise ValueError(f"istft_hop must divide the hop ({hop}); got {istft_hop}")
        self.sub = hop // self.istft_hop
        if n_fft < 2 * self.istft_hop or n_fft % 2:
            raise ValueError(f"n_fft must be even and at least twice the iSTFT hop ({self.istft_hop}); got {n_fft}")
        if harmonics and not f0:
            raise ValueError("harmonics need the f0 track (f0 conditioning)")
        self.channels, self.hop, self.n_fft = channels, hop, n_fft
        self.sample_rate, self.harmonics = int(sample_rate), int(harmonics)
        self.embed = nn.Conv1d(latent_dim, dim, 7, padding=3)
        if f0:
            # the decoded f0 track (voicing, log f0) added to the backbone's input; zero at init, so a model
            # started from weights without it decodes as before
            self.f0_embed = nn.Linear(2, dim)
            nn.init.zeros_(self.f0_embed.weight)
            nn.init.zeros_(self.f0_embed.bias)
        if harmonics:
            # log-amplitude envelope of the harmonics over ``bands`` points from 0 Hz to Nyquist, sampled at each
            # harmonic's frequency: one envelope serves every pitch. At init a falling envelope (amplitude 0.018 at
            # 0 Hz to 9e-4 at Nyquist), about the level of speech at -24 LUFS: started near silence (exp(-8)) the
            # gradient of the log amplitude, proportional to the amplitude, was too small to grow it (measured:
            # after 1,100 batches the oscillators were 37 dB below the output).
            self.harm = nn.Linear(dim, channels * bands)
            nn.init.zeros_(self.harm.weight)
            with torch.no_grad():
                self.harm.bias.copy_(torch.linspace(-4.0, -7.0, bands).repeat(channels))
            self.bands = int(bands)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock1d(dim, 1.0 / layers) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.out = nn.Linear(dim, channels * self.sub * (n_fft + 2))
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def context_frames(self) -> int:
        return 3 + 3 * len(self.blocks) + -(-self.n_fft // (2 * self.hop))

    @torch.no_grad()
    def head_from(self, weight: torch.Tensor, bias: torch.Tensor, n_fft: int) -> None:
        """Start this head (``sub`` frames per latent frame, window ``self.n_fft``) from the trained head of a
        decoder with one frame per latent frame and window ``n_fft`` (``weight`` (C * (n_fft + 2), dim), ``bias``).

        Each new bin takes the old bin at its frequency. Log magnitudes drop by log(n_fft / self.n_fft) / 2: the
        STFT magnitude of noise scales with the square root of the window's length, and noise is most of what the
        head draws beside the harmonic oscillators (measured on the speech model: of 0, 1/2 and 1 times the log
        ratio, 1/2 starts with the lowest mel distance). Phases, which ``torch.stft`` refers to each frame's first
        sample, move by that sample's offset from the old frame's at the bin's frequency. So the new head starts
        out drawing about what the old one drew, and training then has the finer frames to use."""
        bins, old_bins, c = self.n_fft // 2 + 1, n_fft // 2 + 1, self.channels
        ratio = n_fft // self.n_fft
        if n_fft % self.n_fft or (old_bins - 1) % ratio or weight.shape[0] != c * 2 * old_bins:
            raise ValueError(f"cannot start a window-{self.n_fft} head from a window-{n_fft} one")
        w_old, b_old = weight.view(c, 2, old_bins, -1), bias.view(c, 2, old_bins)
        pick = torch.arange(bins) * ratio
        w_new = self.out.weight.view(c, self.sub, 2, bins, -1)
        b_new = self.out.bias.view(c, self.sub, 2, bins)
        freq = torch.arange(bins, dtype=torch.float64) / self.n_fft  # cycles per sample
        for k in range(self.sub):
            w_new[:, k] = w_old[:, :, pick].to(w_new.dtype)
            b_new[:, k] = b_old[:, :, pick].to(b_new.dtype)
            b_new[:, k, 0] -= 0.5 * math.log(ratio)
            # first sample of the new frame minus that of the old one: (k * istft_hop - n/2) - (-n_old/2)
            shift = k * self.istft_hop - self.n_fft // 2 + n_fft // 2
            b_new[:, k, 1] += torch.remainder(2 * math.pi * freq * shift, 2 * math.pi).to(b_new.dtype)

    def forward(self, z, f0: torch.Tensor | None = None, voiced: torch.Tensor | None = None,
                phase0: torch.Tensor | None = None):
        """``z`` (B, latent_dim, F); with f0 conditioning also ``f0`` (B, F + 1) Hz with unvoiced frames filled,
        ``voiced`` (B, F + 1) and ``phase0`` (B,) the oscillators' phase at frame 0 in cycles (the frame after the
        last is the harmonics' interpolation end point)."""
        b, _, f = z.shape
        h = self.norm(self.embed(z).transpose(1, 2))
        if hasattr(self, "f0_embed"):
            v = voiced[:, :f].to(h.dtype)
            h = h + self.f0_embed(torch.stack([v, torch.log2(f0[:, :f] / 120.0).to(h.dtype)], -1))
        h = h.transpose(1, 2)
        for blk in self.blocks:
            h = blk(h)
        hn = self.final_norm(h.transpose(1, 2))
        h = self.out(hn)  # (B, F, C * sub * (n_fft + 2))
        bins = self.n_fft // 2 + 1
        # (B, F, C, sub, 2, bins) -> (B, C, 2, bins, F * sub): sub-frames in time order
        h = h.view(b, f, self.channels, self.sub, 2, bins).permute(0, 2, 4, 5, 1, 3).reshape(
            b, self.channels, 2, bins, f * self.sub)
        mag = torch.exp(h[:, :, 0].clamp(max=6.0))  # bounded: exp(6) ~ 400 keeps early training finite
        phase = h[:, :, 1]
        spec = torch.polar(mag, phase).reshape(b * self.channels, bins, f * self.sub)
        y = torch.istft(spec, self.n_fft, self.istft_hop, window=self.window, center=True, length=f * self.hop)
        y = y.view(b, self.channels, -1)
        if self.harmonics:
            y = y + self._harmonics(hn, f0, voiced, phase0)
        return y

    def _harmonics(self, hn, f0, voiced, phase0):
        b, f, _ = hn.shape
        env = self.harm(hn).view(b, f, self.channels, self.bands).clamp(max=2.0)  # log amplitude
        env = torch.cat([env, env[:, -1:]], 1).permute(0, 2, 1, 3)  # (B, C, F + 1, bands)
        k = torch.arange(1, self.harmonics + 1, device=hn.device, dtype=env.dtype)
        pos = (f0.to(env.dtype)[:, None, :, None] * k / (self.sample_rate / 2) * (self.bands - 1)).clamp(
            0, self.bands - 1)  # (B, 1, F + 1, H)
        lo = pos.floor().long().clamp(max=self.bands - 2)
        w = pos - lo
        idx = lo.expand(b, self.channels, -1, -1)
        la = env.gather(-1, idx) * (1 - w) + env.gather(-1, idx + 1) * w  # (B, C, F + 1, H)
        amps = torch.exp(la) * voiced.to(env.dtype)[:, None, :, None]
        amps = amps.permute(0, 1, 3, 2).reshape(b * self.channels, self.harmonics, f + 1)
        fr = f0.repeat_interleave(self.channels, 0)
        p0 = phase0.repeat_interleave(self.channels, 0)
        return harmonic_bank(fr, amps, p0, self.sample_rate, self.hop).view(b, self.channels, -1)


class _MultiResolutionSTFTLoss(nn.Module):
    """Mean over Hann windows (hop a quarter window) of ``term(S_x, S_y)``, a scalar distance between the complex
    STFTs of the two signals; the subclasses say which distance."""

    def __init__(self, windows):
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        for w in self.windows:
            self.register_buffer(f"win{w}", torch.hann_window(w), persistent=False)

    def term(self, sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x, y):
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        loss = x.new_zeros(())
        for w in self.windows:
            win = getattr(self, f"win{w}")
            sx, sy = (torch.stft(s, w, w // 4, window=win, return_complex=True) for s in (x, y))
            loss = loss + self.term(sx, sy)
        return loss / len(self.windows)


class ComplexSTFTLoss(_MultiResolutionSTFTLoss):
    """Multi-resolution loss on the power-law compressed complex STFT, |S|^0.3 e^{j angle S} (the compressed
    spectral loss of speech enhancement): unlike a mel or magnitude loss it depends on the phase, so it rewards a
    waveform that lines up with the input (SI-SDR), while the compression keeps quiet bins from being ignored."""

    def __init__(self, windows=(256, 512, 1024), power: float = 0.3):
        super().__init__(windows)
        self.power = float(power)

    def term(self, sx, sy):
        # (|S|^2 + 1e-8)^((p - 1) / 2): the compression with a floor, so silent bins do not blow up the gradient
        cx = sx * (sx.real.square() + sx.imag.square() + 1e-8).pow((self.power - 1) / 2)
        cy = sy * (sy.real.square() + sy.imag.square() + 1e-8).pow((self.power - 1) / 2)
        return (cx - cy).abs().mean()


class LogMagSTFTLoss(_MultiResolutionSTFTLoss):
    """Multi-resolution L1 between log10 STFT magnitudes (clamped at 1e-5) on the linear frequency axis. Like the mel
    loss it ignores the phase, so a decoder whose phase is still wrong is not pulled towards silence (as the complex
    loss pulls it); unlike the mel loss its resolution does not fall with frequency, so it scores the pitch
    harmonics at every frequency (the fine structure PESQ needs: docs/rvqgan.md, "What limits the speech model")."""

    def __init__(self, windows=(512, 1024, 2048)):
        super().__init__(windows)

    def term(self, sx, sy):
        return (torch.log10(sx.abs().clamp(min=1e-5)) - torch.log10(sy.abs().clamp(min=1e-5))).abs().mean()


def neg_si_sdr(x_hat: torch.Tensor, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Negative scale-invariant SDR in dB, per signal and channel, averaged (the training form of
    :func:`codec.eval.metrics.si_sdr`). It scores the waveform itself, so it rewards the phase directly, and being
    scale-invariant it does not pull the output towards silence where the phase is still wrong."""
    x = x - x.mean(-1, keepdim=True)
    y = x_hat - x_hat.mean(-1, keepdim=True)
    alpha = (y * x).sum(-1, keepdim=True) / (x.square().sum(-1, keepdim=True) + eps)
    target = alpha * x
    ratio = target.square().sum(-1) / ((y - target).square().sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()
