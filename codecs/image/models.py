"""Learned image codecs: FactorizedPrior, ScaleHyperprior (Ballé et al. 2018) and MeanScaleHyperprior
(Minnen et al. 2018), on the codec base (:class:`codec.codecs.base.CodecModule`).

The transforms are CompressAI's published architectures with configurable widths N and M, assembled from
CompressAI's layers (``conv``/``deconv``, GDN) in ``compressai.models.google``'s exact layout (so its state_dicts
load); the entropy models are CompressAI's ``EntropyBottleneck`` and
``GaussianConditional`` through :mod:`codec.entropy.models`. Attribute names are CompressAI's (``g_a``, ``g_s``,
``h_a``, ``h_s``, ``entropy_bottleneck``, ``gaussian_conditional``), so a state_dict saved by CompressAI for the same
architecture (``compressai.zoo`` naming) loads into ours unchanged and gives the same reconstruction.

Coding goes through :mod:`codec.entropy` only: ``compress(x) -> Payload`` returns real bytes coded with the integer
CDF tables frozen in the model (:meth:`ImageCodec.freeze_tables`, done at export); ``decompress(Payload)`` reads
them back. Images of any size are padded (replicate) to the network's stride and cropped back.

Training (through :class:`codec.train.task.CodecTask`, manual optimisation so the auxiliary optimiser is
CompressAI's):
  - loss ``lmbda * 255**2 * MSE + bpp`` (``metric="mse"``) or ``lmbda * (1 - MS-SSIM) + bpp`` (``metric="ms-ssim"``);
  - main Adam over all parameters except the bottleneck ``quantiles``, and a separate Adam over the quantiles on
    CompressAI's auxiliary loss; both losses are backpropagated together (their gradients touch disjoint
    parameters, so this equals two backward passes, and DDP sees every parameter used);
  - gradient clipping of the main parameters (``clip_max_norm``);
  - validation logs ``val/loss``, ``val/bpp`` (likelihood estimate), ``val/psnr`` (8-bit-rounded RGB) and
    ``val/ms_ssim``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.bitstream import Payload
from codec.codecs.base import CodecModule, as_batch, register_codec
from codec.entropy import CdfTables, decode, encode
from codec.entropy.adapters import (
    entropy_bottleneck_dequantize,
    entropy_bottleneck_indexes,
    entropy_bottleneck_symbols,
)
from codec.entropy import intnet
from codec.entropy.models import EntropyBottleneck, GaussianConditional, load_entropy_buffers
from codec.errors import BitstreamError, CodecError


def _psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) over the batch, on 8-bit-rounded images as CompressAI's evaluation does."""
    a = (x.clamp(0, 1) * 255).round()
    b = (x_hat.clamp(0, 1) * 255).round()
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(255.0 ** 2 / mse)).mean()


# ------------------------------------------------------------------------------------------------------------
# transforms: compressai.models.google's layouts, built from CompressAI's layers without importing its model zoo
# ------------------------------------------------------------------------------------------------------------
def _layers():
    from compressai.layers import GDN
    from compressai.models.utils import conv, deconv

    return GDN, conv, deconv


def analysis(N: int, M: int) -> nn.Sequential:
    """g_a of bmshj2018 / mbt2018: four stride-2 5x5 convolutions with GDN."""
    GDN, conv, _ = _layers()
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis(N: int, M: int) -> nn.Sequential:
    """g_s: four stride-2 5x5 transposed convolutions with inverse GDN."""
    GDN, _, deconv = _layers()
    return nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True), deconv(N, N),
                         GDN(N, inverse=True), deconv(N, 3))


def hyper_analysis(N: int, M: int, act=nn.ReLU) -> nn.Sequential:
    _, conv, _ = _layers()
    return nn.Sequential(conv(M, N, stride=1, kernel_size=3), act(inplace=True), conv(N, N), act(inplace=True),
                         conv(N, N))


def hyper_synthesis(N: int, M: int, mean_scale: bool = False) -> nn.Sequential:
    """h_s of bmshj2018-hyperprior (scales, ReLU) or of mbt2018-mean (scales and means, LeakyReLU)."""
    _, conv, deconv = _layers()
    if mean_scale:
        return nn.Sequential(deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2),
                             nn.LeakyReLU(inplace=True), conv(M * 3 // 2, M * 2, stride=1, kernel_size=3))
    return nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                         conv(N, M, stride=1, kernel_size=3), nn.ReLU(inplace=True))


class ImageCodec(CodecModule):
    """Shared training and coding logic of the image codecs (subclasses build the networks)."""

    codec_name = "image"
    modality = "image"
    #: total downsampling of the network; inputs are padded to a multiple of it
    stride = 64
    #: names of the coded streams, in order
    streams: tuple = ()
    #: whether the hyper-synthesis predicts means as well as scales
    _mean_scale = False

    def __init__(self, N: int = 128, M: int = 192, lmbda: float = 0.0130, metric: str = "mse", lr: float = 1e-4,
                 aux_lr: float = 1e-3, clip_max_norm: float = 1.0, lr_milestones: list | None = None,
                 lr_gamma: float = 0.1, init_from: str | None = None):
        super().__init__()
        if metric not in ("mse", "ms-ssim"):
            raise CodecError(f"metric must be 'mse' or 'ms-ssim', not {metric!r}")
        if int(N) < 1 or int(M) < 1:
            raise CodecError(f"channel widths must be positive (N={N}, M={M})")
        self.save_hyperparameters()
        self.N, self.M = int(N), int(M)
        self._build(self.N, self.M)
        self._exact = None
        if init_from:
            self.init_from(init_from)

    # ---------------------------------------------------------------------------------------------------- config
    def _build(self, N: int, M: int) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        """A plain dict that fully rebuilds the architecture (training settings included for the record)."""
        return {"class": type(self).__name__, "N": self.N, "M": self.M}

    @classmethod
    def from_config(cls, config: dict) -> "ImageCodec":
        return cls(N=int(config["N"]), M=int(config["M"]))

    # ---------------------------------------------------------------------------------------------------- loading
    def _prepare_state_dict(self, state_dict: dict) -> dict:
        """Our own and CompressAI's state_dicts load (the CDF buffers are resized as CompressAI does)."""
        return load_entropy_buffers(self, state_dict)

    def _reset_caches(self) -> None:
        super()._reset_caches()
        self._exact = None

    def prepare_export(self, source: dict) -> dict:
        from codec.entropy.models import default_scale_table

        if getattr(self, "gaussian_conditional", None) is not None:  # tables on our grid, whatever training used
            self.gaussian_conditional.scale_table = default_scale_table()
        return {}

    def _fingerprint_salt(self) -> bytes:
        return intnet.VERSION.encode()  # the integer evaluation of the entropy parameters is part of the model

    @classmethod
    def training_record(cls, hparams: dict, data: dict, checkpoint: dict) -> dict:
        return {**super().training_record(hparams, data, checkpoint), "lambda": hparams.get("lmbda"),
                "metric": hparams.get("metric"), "crop": data.get("crop_size")}

    # ---------------------------------------------------------------------------------------------------- training
    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    def rate_distortion(self, x: torch.Tensor, out: dict) -> dict:
        num_pixels = x.size(0) * x.size(2) * x.size(3)
        bpp = sum(torch.log(lik).sum() for lik in out["likelihoods"].values()) / (-math.log(2) * num_pixels)
        mse = F.mse_loss(out["x_hat"], x)
        res = {"bpp": bpp, "mse": mse}
        if self.hparams.metric == "mse":
            res["loss"] = self.hparams.lmbda * 255 ** 2 * mse + bpp
        else:
            from pytorch_msssim import ms_ssim

            res["ms_ssim"] = ms_ssim(out["x_hat"].clamp(0, 1), x, data_range=1.0)
            res["loss"] = self.hparams.lmbda * (1 - res["ms_ssim"]) + bpp
        return res

    manual_optimization = True

    def configure_optimizers(self, task):
        main = [p for n, p in self.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
        aux = [p for n, p in self.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
        opt = torch.optim.Adam(main, lr=self.hparams.lr)
        aux_opt = torch.optim.Adam(aux, lr=self.hparams.aux_lr)
        if self.hparams.lr_milestones:
            sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_milestones),
                                                       gamma=self.hparams.lr_gamma)
            return [opt, aux_opt], [{"scheduler": sch, "interval": "step"}]
        return [opt, aux_opt]

    def training_step(self, task, batch, batch_idx):
        x = as_batch(batch)
        opt, aux_opt = task.optimizers()
        out = self(x)
        rd = self.rate_distortion(x, out)
        aux = self.aux_loss()
        opt.zero_grad()
        aux_opt.zero_grad()
        task.manual_backward(rd["loss"] + aux)
        if self.hparams.clip_max_norm and self.hparams.clip_max_norm > 0:
            task.clip_gradients(opt, gradient_clip_val=self.hparams.clip_max_norm, gradient_clip_algorithm="norm")
        opt.step()
        if getattr(task.trainer.precision_plugin, "scaler", None) is not None:
            aux_opt.step()  # fp16 loss scaling: let Lightning unscale (this step also counts in global_step)
        else:
            aux_opt.optimizer.step()  # raw step, so that trainer.global_step / max_steps count batches
        sch = task.lr_schedulers()
        if sch is not None:
            sch.step()
        task.log_dict({"train/loss": rd["loss"], "train/bpp": rd["bpp"], "train/mse": rd["mse"], "train/aux": aux},
                      prog_bar=True, on_step=True, on_epoch=False)
        return rd["loss"]

    def validation_step(self, task, batch, batch_idx):
        from pytorch_msssim import ms_ssim

        x = as_batch(batch)
        out = self(x)
        rd = self.rate_distortion(x, out)
        x_hat = out["x_hat"].clamp(0, 1)
        logs = {"val/loss": rd["loss"], "val/bpp": rd["bpp"], "val/psnr": _psnr(x, x_hat)}
        if min(x.shape[-2:]) > 160:
            logs["val/ms_ssim"] = ms_ssim(x_hat, x, data_range=1.0)
        task.log_dict(logs, prog_bar=False, on_epoch=True, sync_dist=True, batch_size=x.size(0))

    # ---------------------------------------------------------------------------------------------------- tables
    def _compute_tables(self) -> dict[str, CdfTables]:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------------- coding
    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.size(1) != 3:
            raise CodecError(f"expected an image tensor of shape (1, 3, H, W), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.size(0) != 1:
            raise CodecError("compress() codes one image at a time (batch size 1)")
        if x.size(2) < 1 or x.size(3) < 1:
            raise CodecError(f"empty image ({x.size(2)}x{x.size(3)})")

    @staticmethod
    def _geometry(payload: Payload) -> tuple[int, int]:
        try:
            h, w = payload.ints["size"]
        except (KeyError, ValueError, TypeError):
            raise BitstreamError("image payload has no valid 'size' entry") from None
        if not (0 < h <= 1 << 16 and 0 < w <= 1 << 16):
            raise BitstreamError(f"image size {h}x{w} in the payload is out of range")
        return int(h), int(w)

    def _latent_shape(self, h: int, w: int, down: int) -> tuple[int, int]:
        return (-(-h // self.stride)) * self.stride // down, (-(-w // self.stride)) * self.stride // down

    def _code_z(self, z: torch.Tensor) -> tuple[bytes, np.ndarray]:
        sym, idx = entropy_bottleneck_symbols(self.entropy_bottleneck, z)
        return encode(sym, idx, self.tables["bottleneck"]), sym

    def _decode_z(self, data: bytes, shape) -> tuple[np.ndarray, torch.Tensor]:
        idx = entropy_bottleneck_indexes(self.entropy_bottleneck, shape)
        sym = decode(data, idx, self.tables["bottleneck"], shape=tuple(shape))
        return sym, entropy_bottleneck_dequantize(self.entropy_bottleneck, sym).float().to(self.device)

    # ------------------------------------------------------------------------------------- exact entropy parameters
    # What the entropy decoder depends on (the Gaussian table of each element of y, and the mean it is coded around)
    # comes from the hyper-synthesis h_s evaluated as an exact integer network (codec.entropy.intnet), so a file
    # decodes to the same symbols on any CPU, thread count, backend or GPU. Training uses the float h_s.
    def _exact_parts(self) -> dict:
        if getattr(self, "_exact", None) is None:
            eb = self.entropy_bottleneck
            self._exact = {
                "h_s": intnet.IntStack.from_modules(self.h_s),
                "medians": intnet.to_fixed(eb._get_medians().detach().reshape(1, -1, 1, 1).cpu()),
                "thresholds": intnet.scale_thresholds(self.gaussian_conditional.scale_table),
            }
        return self._exact

    def z_fixed(self, z_sym) -> torch.Tensor:
        """The decoded hyper-latent in fixed point (int64 at ``2**A_BITS``): ``z_hat = symbol + median``, exactly."""
        ex = self._exact_parts()
        s = torch.as_tensor(np.asarray(z_sym), dtype=torch.int64, device=self.device)
        return (s << intnet.A_BITS) + ex["medians"].to(self.device)

    def hyper_fixed(self, z_int: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scales, means or None) of y, int64 at ``2**A_BITS``, from the fixed-point hyper-latent: exact."""
        out = self._exact_parts()["h_s"](z_int).to(torch.int64)
        if self._mean_scale:
            scales, means = out.chunk(2, 1)
            return scales, means
        return out, None

    def scale_indexes(self, scales_int: torch.Tensor) -> np.ndarray:
        """Gaussian table index per element (int64 numpy) from integer scales: exact."""
        return intnet.scale_indexes(scales_int, self._exact_parts()["thresholds"]).cpu().numpy()

    def entropy_params(self, z_sym) -> tuple[np.ndarray, torch.Tensor | None]:
        """(Gaussian table indexes, integer means or None) of y given the hyper-latent symbols: everything the
        decoder of y depends on."""
        scales, means = self.hyper_fixed(self.z_fixed(z_sym))
        return self.scale_indexes(scales), means

    def _code_y(self, y: torch.Tensor, idx: np.ndarray, means_int: torch.Tensor | None):
        sym = torch.round(y - intnet.from_fixed(means_int)) if means_int is not None else torch.round(y)
        sym = sym.to(torch.int32).cpu().numpy()
        data = encode(sym, idx, self.tables["gaussian"])
        return data, sym

    def _decode_y(self, data: bytes, idx: np.ndarray, means_int: torch.Tensor | None):
        sym = decode(data, idx, self.tables["gaussian"], shape=tuple(idx.shape))
        y_hat = torch.from_numpy(sym.astype(np.float32)).to(self.device)
        if means_int is not None:
            y_hat = y_hat + intnet.from_fixed(means_int)
        return sym, y_hat


@register_codec
class FactorizedPrior(ImageCodec):
    """Ballé et al. 2018 factorized prior ("bmshj2018-factorized"): g_a / g_s with GDN, EntropyBottleneck(M)."""

    codec_name = "factorized-prior"
    stride = 16
    streams = ("y",)

    def __init__(self, N: int = 128, M: int = 192, **kwargs):
        super().__init__(N=N, M=M, **kwargs)

    def _build(self, N, M):
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        self.entropy_bottleneck = EntropyBottleneck(M)

    def forward(self, x):
        y = self.g_a(x)
        y_hat, y_lik = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik}}

    def _compute_tables(self):
        return {"bottleneck": self.entropy_bottleneck.tables()}

    def _compress(self, x):
        self._check_input(x)
        h, w = x.shape[-2:]
        y = self.g_a(self.pad(x))
        data, sym = self._code_z(y)
        return Payload(streams={"y": data}, ints={"size": (h, w)}), [sym]

    def expected_symbols(self, payload):
        lh, lw = self._latent_shape(*self._geometry(payload), 16)
        return {"y": self.M * lh * lw}

    def _decompress(self, payload):
        h, w = self._geometry(payload)
        lh, lw = self._latent_shape(h, w, 16)
        sym, y_hat = self._decode_z(payload.streams.get("y", b""), (1, self.M, lh, lw))
        x_hat = self.g_s(y_hat).clamp_(0, 1)[..., :h, :w]
        return x_hat, [sym]


@register_codec
class ScaleHyperprior(ImageCodec):
    """Ballé et al. 2018 scale hyperprior ("bmshj2018-hyperprior"): z ~ factorized, y ~ N(0, sigma(z))."""

    codec_name = "scale-hyperprior"
    stride = 64
    streams = ("z", "y")

    def _build(self, N, M):
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        self.h_a = hyper_analysis(N, M, nn.LeakyReLU if self._mean_scale else nn.ReLU)
        self.h_s = hyper_synthesis(N, M, self._mean_scale)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

    def hyper_encode(self, y):
        return self.h_a(torch.abs(y))

    def hyper_decode(self, z_hat):
        return self.h_s(z_hat), None

    def forward(self, x):
        y = self.g_a(x)
        z = self.hyper_encode(y)
        z_hat, z_lik = self.entropy_bottleneck(z)
        scales, means = self.hyper_decode(z_hat)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    def _compute_tables(self):
        return {"bottleneck": self.entropy_bottleneck.tables(), "gaussian": self.gaussian_conditional.tables()}

    def _compress(self, x):
        self._check_input(x)
        h, w = x.shape[-2:]
        y = self.g_a(self.pad(x))
        z = self.hyper_encode(y)
        z_data, z_sym = self._code_z(z)
        idx, means = self.entropy_params(z_sym)
        y_data, y_sym = self._code_y(y, idx, means)
        return Payload(streams={"z": z_data, "y": y_data}, ints={"size": (h, w)}), [z_sym, y_sym]

    def expected_symbols(self, payload):
        zh, zw = self._latent_shape(*self._geometry(payload), 64)
        return {"z": self.N * zh * zw, "y": self.M * 16 * zh * zw}

    def _decompress(self, payload):
        h, w = self._geometry(payload)
        zh, zw = self._latent_shape(h, w, 64)
        for k in ("z", "y"):
            if k not in payload.streams:
                raise BitstreamError(f"image payload has no {k!r} stream")
        z_sym = self._decode_z(payload.streams["z"], (1, self.N, zh, zw))[0]
        idx, means = self.entropy_params(z_sym)
        y_sym, y_hat = self._decode_y(payload.streams["y"], idx, means)
        x_hat = self.g_s(y_hat).clamp_(0, 1)[..., :h, :w]
        return x_hat, [z_sym, y_sym]


@register_codec
class MeanScaleHyperprior(ScaleHyperprior):
    """Minnen et al. 2018 mean-scale hyperprior ("mbt2018-mean"): y ~ N(mu(z), sigma(z)). The default image model."""

    codec_name = "mean-scale-hyperprior"
    _mean_scale = True

    def hyper_encode(self, y):
        return self.h_a(y)

    def hyper_decode(self, z_hat):
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return scales, means
