"""A hierarchical VAE image codec in the QRes-VAE design (Duan et al., WACV 2023) with QARV's variable rate, on the
shared codec base.

Design (``lvae/models/qresvae`` and ``lvae/models/qarv`` in duanzhiihao/lossy-vae, changed where noted):

- **Bottom-up path** (encoder only, float): a 4x4 patch embedding to stride 4, residual blocks, and a 2x2
  downsampling per scale to strides 8, 16, 32, 64; its feature maps feed the posteriors.
- **Top-down path**: from a learned constant at stride 64, scale by scale (64/32/16/8/4), ``blocks[i]`` latent
  blocks of ``zdims[i]`` channels each, and a 2x upsampling (1x1 conv + pixel shuffle) between scales. A latent
  block refines the feature, predicts the prior ``N(mu, sigma)`` of its latent from it, adds the latent
  (``f += W z``) and refines again. So each block's prior depends on everything decoded before it.
- **Posterior and prior**: the posterior is a unit box around a predicted mean; the prior is the Gaussian convolved
  with that box. Training adds ``U(-1/2, 1/2)`` noise to the posterior mean; coding rounds it around the prior
  mean (``z = mu + round(q - mu)``) and codes the integer residual under the Gaussian table of ``sigma``.
- **Variable rate (QARV)**: every residual block gets an additive bias computed from an embedding of ``log lambda``,
  so one model covers the range ``lmbda_range``; ``--quality`` picks one of ``qualities`` (log-spaced lambdas).
  Training samples lambda per image, log-uniformly, with the loss ``lambda * 255^2 * MSE + bpp``.
- **Changed for exact decoding**: residual blocks are ``f + pw2(LeakyReLU(pw1(f') + e(lambda)))`` without
  normalisation, with LeakyReLU for GELU and an additive lambda bias for AdaLN: ``block="convnext"`` is the
  ConvNeXt layout (``f'`` a depthwise ``k x k`` convolution, then a 1x1 MLP; QARV's kernels 1/3/5/7/7 per scale),
  ``block="conv"`` (the default) two 3x3 convolutions, because PyTorch's depthwise convolutions train tens of times
  slower on a CPU. Convolutions, LeakyReLU, additions and pixel shuffles are what
  :class:`codec.entropy.intnet.IntStack` evaluates exactly, so the whole top-down path, every block's prior mean and
  table, and the features between blocks, are integer computations (fixed point at ``2**A_BITS``) that give the
  same bits on any CPU, thread count or GPU. The lambda bias of each quality is an integer table stored in the
  checkpoint (computed once at export). Only the final synthesis after the last latent block is float.
- **Progressive decoding**: each latent block's symbols are one coded stream (``z0``, ``z1``, ...). Decoding the
  first ``k`` streams and taking the prior mean for the later latents gives a coarser image without reading the
  rest; a checksum per prefix of blocks verifies such a partial decode.
- **Prefix training** (``prefix_drop``, added here): a fraction of the training images is decoded from a random
  prefix of the latent blocks, as such a decoder would, which moves information from the stride-4 blocks into the
  coarse ones (docs/image.md measures it).

The published qres34m layout is ``widths=[512, 512, 384, 256, 128]``, ``blocks=[1, 2, 3, 3, 3]``,
``zdims=[16, 14, 12, 10, 8]`` with ConvNeXt blocks: ``block="convnext"`` with those settings (and ``enc_blocks=2``)
gives about 34 M parameters (``train/configs/qres-vae-34m.yaml``); the default ``block="conv"`` at widths
``[64, 64, 64, 48, 48]`` is a CPU-trainable 3 M.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.bitstream import Payload, symbols_checksum
from codec.codecs.base import CodecModule, as_batch, register_codec
from codec.entropy import decode, encode, intnet
from codec.entropy.models import GaussianConditional, load_entropy_buffers
from codec.errors import BitstreamError, CodecError, DivergenceError

SCALES = (64, 32, 16, 8, 4)
#: depthwise kernel per scale (QARV's: 1x1 maps at stride 64 of a 64 px crop need no spatial kernel)
KERNELS = (1, 3, 5, 7, 7)
EMB_DIM = 64
MAX_BLOCKS = 32


class ResBlock(nn.Module):
    """A residual block without normalisation, ``f + pw2(LeakyReLU(pw1(f') + e))``, ``e`` a per-channel bias from
    the lambda embedding. ``kind="convnext"``: ``f' = dw(f)`` a depthwise ``kernel x kernel`` convolution, then a
    1x1 MLP through ``mlp`` times the width (the QRes-VAE / ConvNeXt layout; PyTorch's depthwise convolutions are
    slow to train on a CPU). ``kind="conv"``: ``f' = f`` and 3x3 convolutions of the width (the CPU-trainable
    default)."""

    def __init__(self, width: int, kernel: int = 7, mlp: float = 2.0, kind: str = "conv"):
        super().__init__()
        if kind == "convnext":
            hidden = max(1, int(round(width * mlp)))
            self.dw = nn.Conv2d(width, width, kernel, padding=kernel // 2, groups=width)
            self.pw1 = nn.Conv2d(width, hidden, 1)
            self.pw2 = nn.Conv2d(hidden, width, 1)
        elif kind == "conv":
            k = min(3, kernel)
            hidden = width
            self.dw = None
            self.pw1 = nn.Conv2d(width, hidden, k, padding=k // 2)
            self.pw2 = nn.Conv2d(hidden, width, k, padding=k // 2)
        else:
            raise CodecError(f"block kind must be 'conv' or 'convnext', not {kind!r}")
        self.act = nn.LeakyReLU(0.125)
        self.emb = nn.Linear(EMB_DIM, hidden)
        nn.init.zeros_(self.pw2.weight)
        nn.init.zeros_(self.pw2.bias)

    def forward(self, f, emb):
        g = f if self.dw is None else self.dw(f)
        return f + self.pw2(self.act(self.pw1(g) + self.emb(emb)[:, :, None, None]))

    def layers(self) -> list[nn.Module]:
        """The modules the integer evaluation compiles (the lambda bias joins ``pw1``)."""
        return ([] if self.dw is None else [self.dw]) + [self.pw1, self.act, self.pw2]

    @property
    def bias_layer(self) -> int:
        return 0 if self.dw is None else 1


def _float32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in float32 even under autocast (``trainer.precision: bf16-mixed``): the latent means and scales
    and the output pixels, where bfloat16's 8-bit mantissa (steps of 1/16 at 10) would be coarser than the
    quantisation bin or the distortion at high rates. Without autocast it is just ``layer(x)``."""
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return layer(x.float())
    return layer(x)


class LatentBlock(nn.Module):
    def __init__(self, width: int, zdim: int, enc_width: int, kernel: int = 7, kind: str = "conv"):
        super().__init__()
        self.front = ResBlock(width, kernel, kind=kind)
        self.prior = nn.Conv2d(width, 2 * zdim, 1)
        self.post_merge = nn.Conv2d(width + enc_width, width, 1)
        self.post_res = ResBlock(width, kernel, kind=kind)
        self.post_out = nn.Conv2d(width, zdim, 3, padding=1)
        self.z_proj = nn.Conv2d(zdim, width, 1)
        self.end = ResBlock(width, kernel, kind=kind)
        self.zdim = zdim

    def posterior(self, f, enc, emb):
        return _float32(self.post_out, self.post_res(self.post_merge(torch.cat([f, enc], 1)), emb))


def _sinusoid(v: torch.Tensor, dim: int = 32) -> torch.Tensor:
    """Sinusoidal features of embedding positions (0 to 1 over the embedding range; one row per value)."""
    freqs = torch.exp(torch.arange(dim // 2, dtype=v.dtype, device=v.device) * (math.log(64.0) / (dim // 2)))
    a = v[:, None] * freqs[None] * math.pi
    return torch.cat([torch.sin(a), torch.cos(a)], 1)


@register_codec
class QResVAE(CodecModule):
    """Hierarchical VAE image codec (QRes-VAE design, QARV variable rate); see the module docstring."""

    codec_name = "qres-vae"
    modality = "image"
    stride = 64
    manual_optimization = False

    def __init__(self, widths: list | None = None, blocks: list | None = None, zdims: list | None = None,
                 enc_widths: list | None = None, lmbda_range: list | None = None, qualities: int = 8,
                 enc_blocks: int = 2, block: str = "conv",
                 lr: float = 2e-4, clip_max_norm: float = 1.0, lr_milestones: list | None = None,
                 lr_gamma: float = 0.1, init_from: str | None = None, train_quality: int | None = None,
                 prefix_drop: float = 0.0, embed_range: list | None = None, quantization: str = "noise",
                 loss_balance: str = "none"):
        super().__init__()
        self.save_hyperparameters()
        self.widths = [int(w) for w in (widths or [64, 64, 64, 48, 48])]
        self.blocks = [int(b) for b in (blocks or [1, 2, 3, 3, 3])]
        self.zdims = [int(z) for z in (zdims or [16, 14, 12, 10, 8])]
        self.enc_widths = [int(w) for w in (enc_widths or self.widths)]
        lo, hi = (float(v) for v in (lmbda_range or [0.0018, 0.2]))
        if not (len(self.widths) == len(self.blocks) == len(self.zdims) == len(self.enc_widths) == len(SCALES)):
            raise CodecError(f"widths, blocks, zdims and enc_widths need one entry per scale {SCALES}")
        if min(self.widths + self.zdims + self.enc_widths) < 1 or min(self.blocks) < 0 or not 0 < lo < hi:
            raise CodecError("widths, zdims and the lambda range must be positive, blocks non-negative")
        if not 1 <= sum(self.blocks) <= MAX_BLOCKS or not 1 <= int(qualities) <= 64:
            raise CodecError(f"1 to {MAX_BLOCKS} latent blocks and 1 to 64 qualities")
        self.lmbda_range = (lo, hi)
        self.n_qualities = int(qualities)
        # The lambdas the embedding maps to 0 and 1 (default: the ends of ``lmbda_range``). Fixing them when a later
        # stage widens the range keeps every lambda the model already knows at the embedding it was trained on;
        # lambdas outside them get positions below 0 or above 1.
        elo, ehi = (float(v) for v in (embed_range or (lo, hi)))
        if not 0 < elo < ehi:
            raise CodecError(f"embed_range must be two increasing positive lambdas, not {embed_range}")
        self.embed_range = None if embed_range is None else (elo, ehi)
        # A fixed-rate control: train at one quality's lambda only (the same embedding and layout, so it is compared
        # with the variable-rate model at that quality, at equal training budget).
        if train_quality is not None and not 1 <= int(train_quality) <= self.n_qualities:
            raise CodecError(f"train_quality must be 1..{self.n_qualities}; got {train_quality}")
        self.train_quality = None if train_quality is None else int(train_quality)
        # Prefix training: this fraction of the training images is decoded from a random prefix of the latent blocks
        # (the later latents take their prior mean and cost no bits, as in ``decode --blocks k``), which makes the
        # coarse blocks carry information that the fine ones would otherwise hold.
        if not 0.0 <= float(prefix_drop) < 1.0:
            raise CodecError(f"prefix_drop must lie in [0, 1), not {prefix_drop}")
        self.prefix_drop = float(prefix_drop)
        # Training-time quantisation of the latents: "noise" adds U(-1/2, 1/2) (the paper's); "ste" rounds around
        # the prior mean as coding does, with a straight-through gradient. Under noise a latent that carries nothing
        # still costs about 0.15 bits at the smallest prior scale (0.11), where coding it costs almost none, so
        # training overprices silence; rounding prices every latent as the file does (a stage from trained weights;
        # docs/image.md measures it against noise).
        if quantization not in ("noise", "ste"):
            raise CodecError(f"quantization must be 'noise' or 'ste', not {quantization!r}")
        self.quantization = quantization
        # How the images of a batch, each at its own lambda, weigh in the gradient. "none": the mean RD loss, where an
        # image at the top of the range (loss about 18) outweighs one at the bottom (about 0.05) by two orders of
        # magnitude, so the low rates get little of the update. "log": each image's loss divided by its own value
        # (not differentiated), the gradient of the mean log loss, so every lambda weighs alike. The logged loss is
        # the plain RD loss either way.
        if loss_balance not in ("none", "log"):
            raise CodecError(f"loss_balance must be 'none' or 'log', not {loss_balance!r}")
        self.loss_balance = loss_balance
        self.enc_blocks = int(enc_blocks)
        self.block = str(block)
        # bottom-up
        e = self.enc_widths
        self.stem = nn.Conv2d(3, e[-1], 4, stride=4)
        # per scale, coarse (stride 64) to fine (stride 4): enc_down[i] takes scale i + 1 to scale i
        self.enc_res = nn.ModuleList([nn.ModuleList([ResBlock(e[i], KERNELS[i], kind=block) for _ in range(enc_blocks)])
                                      for i in range(5)])
        self.enc_down = nn.ModuleList([nn.Conv2d(e[i + 1], e[i], 2, stride=2) for i in range(4)])
        # top-down
        w = self.widths
        self.bias = nn.Parameter(torch.zeros(1, w[0], 1, 1))
        self.up = nn.ModuleList([nn.Conv2d(w[i - 1], 4 * w[i], 1) for i in range(1, 5)])
        self.latents = nn.ModuleList([nn.ModuleList([LatentBlock(w[i], self.zdims[i], e[i], KERNELS[i], block)
                                                     for _ in range(self.blocks[i])]) for i in range(5)])
        self.synth = nn.ModuleList([ResBlock(w[-1], KERNELS[-1], kind=block) for _ in range(enc_blocks)])
        self.to_rgb = nn.Conv2d(w[-1], 3 * 16, 1)
        # lambda embedding
        self.embed = nn.Sequential(nn.Linear(32, EMB_DIM), nn.LeakyReLU(0.125), nn.Linear(EMB_DIM, EMB_DIM))
        self.gaussian_conditional = GaussianConditional(None)
        from codec.entropy.models import default_scale_table

        self.gaussian_conditional.scale_table = default_scale_table()
        #: integer lambda biases of each quality level and residual block (filled at export; computed on first use
        #: otherwise), int64 at 2**(A_BITS + Q_BITS)
        self.register_buffer("quality_bias", torch.zeros(0, dtype=torch.int64))
        self._exact = None
        if init_from:
            self.init_from(init_from)

    # ------------------------------------------------------------------------------------------------ config
    def config(self) -> dict:
        return {"class": type(self).__name__, "widths": self.widths, "blocks": self.blocks, "zdims": self.zdims,
                "enc_widths": self.enc_widths, "lmbda_range": list(self.lmbda_range), "qualities": self.n_qualities,
                "enc_blocks": self.enc_blocks, "block": self.block,
                **({"embed_range": list(self.embed_range)} if self.embed_range else {})}

    @property
    def num_latent_blocks(self) -> int:
        return sum(self.blocks)

    def quality_lambdas(self) -> list[float]:
        """The lambda of each ``--quality`` (1 = lowest rate), log-spaced over ``lmbda_range``."""
        lo, hi = self.lmbda_range
        n = self.n_qualities
        return [lo * (hi / lo) ** (i / max(n - 1, 1)) for i in range(n)]

    def embed_position(self, log_lmbda):
        """Where log(lambda) sits on the embedding's scale: 0 and 1 at the ends of ``embed_range``."""
        lo, hi = self.embed_range or self.lmbda_range
        return (log_lmbda - math.log(lo)) / (math.log(hi) - math.log(lo))

    def embedding(self, lmbda: torch.Tensor) -> torch.Tensor:
        return self.embed(_sinusoid(self.embed_position(torch.log(lmbda)).float()))

    def _res_blocks(self) -> list[ResBlock]:
        """The top-down path's residual blocks, in evaluation order (their lambda biases, in this order, make up a
        row of ``quality_bias``)."""
        out = []
        for blocks in self.latents:
            for b in blocks:
                out += [b.front, b.end]
        return out + list(self.synth)

    # ------------------------------------------------------------------------------------------------ float model
    def encode_features(self, x: torch.Tensor, emb: torch.Tensor) -> list[torch.Tensor]:
        """Bottom-up feature maps at strides 64, 32, 16, 8, 4 (x in [0, 1], padded to the stride)."""
        f = self.stem(x - 0.5)
        feats = []
        for i in range(4, -1, -1):  # stride 4 .. 64
            if i < 4:
                f = self.enc_down[i](f)
            for r in self.enc_res[i]:
                f = r(f, emb)
            feats.append(f)
        return feats[::-1]

    def forward(self, x: torch.Tensor, lmbda: torch.Tensor | None = None) -> dict:
        """Training / validation pass: noisy latents, likelihoods per block, reconstruction."""
        if lmbda is None:
            lmbda = self.sample_lambda(x.size(0), x.device)
        emb = self.embedding(lmbda)
        enc = self.encode_features(x, emb)
        n, _, h, w = x.shape
        f = self.bias.expand(n, -1, h // 64, w // 64)
        liks = []
        cut = self._prefix_cut(n, x.device)
        k = 0
        for i in range(5):
            if i:
                f = F.pixel_shuffle(self.up[i - 1](f), 2)
            for blk in self.latents[i]:
                f = blk.front(f, emb)
                pm, plogs = _float32(blk.prior, f).chunk(2, 1)
                qm = blk.posterior(f, enc[i], emb)
                z, lik = self._quantize(qm, torch.exp(plogs), pm)
                if cut is not None:  # blocks from the cut on: the prior mean, not coded
                    keep = (k < cut)[:, None, None, None]
                    z, lik = torch.where(keep, z, pm), torch.where(keep, lik, torch.ones_like(lik))
                liks.append(lik)
                f = blk.end(f + blk.z_proj(z), emb)
                k += 1
        return {"x_hat": self.synthesis(f, emb), "likelihoods": liks, "lmbda": lmbda}

    def _quantize(self, qm: torch.Tensor, scale: torch.Tensor, pm: torch.Tensor):
        """A block's latent and its likelihood under the prior (see ``quantization``; evaluation always rounds)."""
        gc = self.gaussian_conditional
        if self.training and self.quantization == "ste":
            from compressai.ops import quantize_ste  # training only: coding never imports CompressAI's package

            z = pm + quantize_ste(qm - pm)
            return z, gc.likelihood_lower_bound(gc._likelihood(z, scale, pm))
        return gc(qm, scale, means=pm)

    def _prefix_cut(self, n: int, device):
        """Per training image, the number of latent blocks it is decoded from: all of them, or for a
        ``prefix_drop`` fraction, 1 to n - 1 uniformly. None when every block is used."""
        nb = self.num_latent_blocks
        if not self.training or self.prefix_drop <= 0 or nb < 2:
            return None
        cut = torch.randint(1, nb, (n,), device=device)
        return torch.where(torch.rand(n, device=device) < self.prefix_drop, cut, torch.full_like(cut, nb))

    def synthesis(self, f: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for r in self.synth:
            f = r(f, emb)
        return F.pixel_shuffle(_float32(self.to_rgb, f), 4) + 0.5

    def sample_lambda(self, n: int, device) -> torch.Tensor:
        if self.train_quality is not None:
            return torch.full((n,), self.quality_lambdas()[self.train_quality - 1], device=device)
        lo, hi = self.lmbda_range
        return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * torch.rand(n, device=device))

    # ------------------------------------------------------------------------------------------------ training
    def rate_distortion(self, x: torch.Tensor, out: dict) -> dict:
        n_pix = x.size(2) * x.size(3)
        bits = sum(torch.log2(lik).sum(dim=(1, 2, 3)) for lik in out["likelihoods"])
        bpp = -bits / n_pix
        mse = F.mse_loss(out["x_hat"], x, reduction="none").mean(dim=(1, 2, 3))
        per_image = out["lmbda"] * 255 ** 2 * mse + bpp
        loss = per_image.mean()
        objective = (per_image / per_image.detach()).mean() if self.loss_balance == "log" else loss
        return {"loss": loss, "objective": objective, "bpp": bpp.mean(), "mse": mse.mean()}

    def configure_optimizers(self, task):
        opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)
        if self.hparams.lr_milestones:
            sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_milestones),
                                                       gamma=self.hparams.lr_gamma)
            return [opt], [{"scheduler": sch, "interval": "step"}]
        return opt

    def training_step(self, task, batch, batch_idx):
        x = as_batch(batch)
        rd = self.rate_distortion(x, self(x))
        task.log_dict({"train/loss": rd["loss"], "train/bpp": rd["bpp"], "train/mse": rd["mse"]}, prog_bar=True,
                      on_step=True, on_epoch=False)
        return rd["objective"]

    def validation_step(self, task, batch, batch_idx):
        x = as_batch(batch)
        for q, lm in ((1, self.quality_lambdas()[0]), (self.n_qualities, self.quality_lambdas()[-1])):
            out = self(x, torch.full((x.size(0),), lm, device=x.device))
            rd = self.rate_distortion(x, out)
            psnr = -10 * torch.log10(F.mse_loss(out["x_hat"].clamp(0, 1), x))
            task.log_dict({f"val/q{q}_bpp": rd["bpp"], f"val/q{q}_psnr": psnr, f"val/q{q}_loss": rd["loss"]},
                          on_epoch=True, sync_dist=True, batch_size=x.size(0))

    @classmethod
    def training_record(cls, hparams: dict, data: dict, checkpoint: dict) -> dict:
        return {**super().training_record(hparams, data, checkpoint), "lambda_range": hparams.get("lmbda_range"),
                **({"train_quality": hparams["train_quality"]} if hparams.get("train_quality") else {}),
                **({"prefix_drop": hparams["prefix_drop"]} if hparams.get("prefix_drop") else {}),
                **({"quantization": "ste"} if hparams.get("quantization") == "ste" else {}),
                **({"loss_balance": hparams["loss_balance"]} if hparams.get("loss_balance", "none") != "none" else {}),
                "crop": data.get("crop_size")}

    def _fingerprint_salt(self) -> bytes:
        return intnet.VERSION.encode()

    def _prepare_state_dict(self, state_dict: dict) -> dict:
        sd = load_entropy_buffers(self, state_dict)
        if "quality_bias" in sd:  # empty until export
            self.quality_bias = torch.zeros_like(sd["quality_bias"])
        return sd

    def _reset_caches(self) -> None:
        super()._reset_caches()
        self._exact = None

    # ------------------------------------------------------------------------------------------------ tables
    def _compute_tables(self):
        return {"gaussian": self.gaussian_conditional.tables()}

    def prepare_export(self, source: dict) -> dict:
        from codec.entropy.models import default_scale_table

        self.gaussian_conditional.scale_table = default_scale_table()
        self.quality_bias = self._quality_bias()
        self._exact = None
        return {"qualities": {q + 1: lm for q, lm in enumerate(self.quality_lambdas())}}

    def _quality_bias(self) -> torch.Tensor:
        """int64 (qualities, sum of widths) of each residual block's lambda bias, at 2**(A_BITS + Q_BITS): computed
        in float64 on the CPU from the weights, once; decoders use the stored table."""
        scale = float(1 << (intnet.A_BITS + intnet.Q_BITS))
        rows = []
        with torch.no_grad():
            for lm in self.quality_lambdas():
                v = torch.tensor([self.embed_position(math.log(lm))], dtype=torch.float64)
                emb = self.embed.to(torch.float64)(_sinusoid(v))
                self.embed.float()
                parts = [r.emb.to(torch.float64)(emb)[0] for r in self._res_blocks()]
                for r in self._res_blocks():
                    r.emb.float()
                rows.append(torch.round(torch.cat(parts) * scale).to(torch.int64))
        return torch.stack(rows).to(self.bias.device)

    # ------------------------------------------------------------------------------------------------ exact path
    def _exact_parts(self) -> dict:
        if self._exact is None:
            qb = self.quality_bias if self.quality_bias.numel() else self._quality_bias()
            self._exact = {"qb": qb.cpu(), "stacks": {}, "up": [intnet.IntStack.from_modules(u) for u in self.up],
                           "prior": [], "zproj": [],
                           "thresholds": intnet.scale_thresholds(self.gaussian_conditional.scale_table),
                           "bias": intnet.to_fixed(self.bias.detach().cpu())}
            for blocks in self.latents:
                for b in blocks:
                    self._exact["prior"].append(intnet.IntStack.from_modules(b.prior))
                    self._exact["zproj"].append(intnet.IntStack.from_modules(b.z_proj))
        return self._exact

    def _res_stacks(self, quality: int) -> list:
        """The residual blocks compiled for one quality (its lambda bias folded into the first convolution)."""
        ex = self._exact_parts()
        if quality not in ex["stacks"]:
            row = ex["qb"][quality - 1]
            stacks, pos = [], 0
            for r in self._res_blocks():
                st = intnet.IntStack.from_modules(r.layers())
                n = r.pw1.out_channels
                st = st.with_bias_offset(r.bias_layer, row[pos: pos + n].to(torch.float64))
                pos += n
                stacks.append(st)
            ex["stacks"][quality] = stacks
        return ex["stacks"][quality]

    def _check_quality(self, quality) -> int:
        q = self.n_qualities // 2 + 1 if quality is None else int(quality)
        if not 1 <= q <= self.n_qualities:
            raise CodecError(f"{self.model_name_or_class()} has qualities 1 to {self.n_qualities}, not {q}")
        return q

    def _top_down(self, h64: int, w64: int, quality: int, latent_fn, stop: int | None = None):
        """The exact top-down path: ``latent_fn(block index, f_int, pm_int, idx)`` returns the block's integer
        residual symbols (encode: from the posterior; decode: from the stream); blocks from ``stop`` on take the
        prior mean. Returns the final integer feature (stride 4)."""
        ex = self._exact_parts()
        res = self._res_stacks(quality)
        dev = self.device
        f = ex["bias"].to(dev).expand(1, -1, h64, w64).to(torch.int64)
        k = 0
        for i in range(5):
            if i:
                f = F.pixel_shuffle(ex["up"][i - 1](f).to(torch.int64), 2)
            for _ in range(self.blocks[i]):
                f = f + res[2 * k](f).to(torch.int64)
                p = ex["prior"][k](f).to(torch.int64)
                pm, plogs = p.chunk(2, 1)
                log2s = intnet.log2e_mul(plogs)
                idx = intnet.log_scale_indexes(log2s, ex["thresholds"]).cpu().numpy()
                if stop is None or k < stop:
                    sym = latent_fn(k, f, pm, idx)
                    s = torch.as_tensor(np.asarray(sym), dtype=torch.int64, device=dev)
                else:
                    s = torch.zeros_like(pm)
                z = (s << intnet.A_BITS) + pm
                f = f + ex["zproj"][k](z).to(torch.int64)
                f = f + res[2 * k + 1](f).to(torch.int64)
                k += 1
        return f

    def _final(self, f_int: torch.Tensor, quality: int) -> torch.Tensor:
        """The float synthesis after the last latent block (the only float part of decoding)."""
        emb = self.embedding(torch.tensor([self.quality_lambdas()[quality - 1]], device=self.device))
        return self.synthesis(intnet.from_fixed(f_int).to(self.device), emb)

    # ------------------------------------------------------------------------------------------------ coding
    def _check_input(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[:2] != (1, 3) or min(x.shape[2:]) < 1:
            raise CodecError(f"expected an image tensor (1, 3, H, W), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")

    @torch.no_grad()
    def _compress(self, x: torch.Tensor, quality: int | None = None):
        self._check_input(x)
        q = self._check_quality(quality)
        h, w = x.shape[-2:]
        xp = self.pad(x)
        emb = self.embedding(torch.tensor([self.quality_lambdas()[q - 1]], device=x.device))
        enc = self.encode_features(xp, emb)
        blocks = [(i, b) for i in range(5) for b in self.latents[i]]  # (scale, latent block) in coding order
        streams, symbols = {}, []

        def from_posterior(k, f, pm, idx):
            i, blk = blocks[k]
            qm = blk.posterior(intnet.from_fixed(f).to(x.device), enc[i], emb)
            sym = torch.round(qm - intnet.from_fixed(pm).to(x.device)).to(torch.int32).cpu().numpy()
            streams[f"z{k}"] = encode(sym, idx, self.tables["gaussian"])
            symbols.append(sym)
            return sym

        self._top_down(xp.shape[2] // 64, xp.shape[3] // 64, q, from_posterior)
        return Payload(streams=streams, ints={"size": (h, w), "quality": (q,), "prefix": self._prefix_sums(symbols)},
                       ), symbols

    @staticmethod
    def _prefix_sums(symbols: list) -> tuple:
        """40-bit digests of the symbols of blocks 0..k, for each k (verifies a progressive decode)."""
        h, out = hashlib.blake2b(digest_size=5), []
        for s in symbols:
            h.update(symbols_checksum(s))
            out.append(int.from_bytes(h.copy().digest(), "little"))
        return tuple(out)

    def _geometry(self, payload: Payload) -> tuple[int, int, int]:
        try:
            h, w = (int(v) for v in payload.ints["size"])
            (q,) = payload.ints["quality"]
        except (KeyError, ValueError, TypeError):
            raise BitstreamError("qres-vae payload lacks its size or quality") from None
        if not (0 < h <= 1 << 16 and 0 < w <= 1 << 16):
            raise BitstreamError(f"image size {h}x{w} in the payload is out of range")
        if not 1 <= int(q) <= self.n_qualities:
            raise BitstreamError(f"the payload asks for quality {q}; this model has 1 to {self.n_qualities}")
        return h, w, int(q)

    def _latent_sizes(self, h: int, w: int) -> list[int]:
        h64, w64 = -(-h // 64), -(-w // 64)
        return [self.zdims[i] * (h64 * 64 // s) * (w64 * 64 // s) for i, s in enumerate(SCALES)
                for _ in range(self.blocks[i])]

    def expected_symbols(self, payload: Payload) -> dict[str, int]:
        h, w, _ = self._geometry(payload)
        return {f"z{k}": n for k, n in enumerate(self._latent_sizes(h, w))}

    @torch.no_grad()
    def _decompress(self, payload: Payload, blocks: int | None = None):
        h, w, q = self._geometry(payload)
        n = self.num_latent_blocks
        stop = n if blocks is None else int(blocks)
        if not 0 <= stop <= n:
            raise CodecError(f"--blocks must lie in 0..{n} (this model has {n} latent blocks), not {blocks}")
        symbols = []

        def from_stream(k, f, pm, idx):
            data = payload.streams.get(f"z{k}")
            if data is None:
                raise BitstreamError(f"qres-vae payload has no stream z{k}")
            sym = decode(data, idx, self.tables["gaussian"], shape=tuple(idx.shape))
            symbols.append(sym)
            return sym

        f = self._top_down(-(-h // 64), -(-w // 64), q, from_stream, stop)
        x_hat = self._final(f, q).clamp_(0, 1)[..., :h, :w]
        return x_hat, symbols

    @torch.no_grad()
    def decompress(self, payload: Payload, blocks: int | None = None) -> torch.Tensor:
        """Decode; ``blocks=k`` decodes only the first k latent blocks' streams (the later latents take their prior
        mean: a coarser image), verified against the payload's checksum of that prefix."""
        if blocks is None or int(blocks) == self.num_latent_blocks:
            return super().decompress(payload)
        self._check_symbol_counts(payload, only={f"z{i}" for i in range(int(blocks))})
        x_hat, symbols = self._decompress(payload, blocks)
        prefix = tuple(payload.ints.get("prefix", ()))
        if symbols and (len(prefix) != self.num_latent_blocks or self._prefix_sums(symbols)[-1] != prefix[len(symbols) - 1]):
            raise DivergenceError("the decoder diverged from the encoder in the first "
                                  f"{len(symbols)} latent blocks (prefix checksum mismatch)")
        return x_hat
