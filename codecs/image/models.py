"""Learned image codecs: FactorizedPrior, ScaleHyperprior (Ballé et al. 2018) and MeanScaleHyperprior
(Minnen et al. 2018), as LightningModules.

The transforms are CompressAI's (``compressai.models.google``: ``conv``/``deconv`` layers and GDN, the published
architectures with configurable widths N and M); the entropy models are CompressAI's ``EntropyBottleneck`` and
``GaussianConditional`` through :mod:`codec.entropy.models`. Attribute names are CompressAI's (``g_a``, ``g_s``,
``h_a``, ``h_s``, ``entropy_bottleneck``, ``gaussian_conditional``), so a state_dict saved by CompressAI for the same
architecture (``compressai.zoo`` naming) loads into ours unchanged and gives the same reconstruction.

Coding goes through :mod:`codec.entropy` only: ``compress(x) -> Payload`` returns real bytes coded with the integer
CDF tables frozen in the model (:meth:`ImageCodec.freeze_tables`, done at export); ``decompress(Payload)`` reads
them back. Images of any size are padded (replicate) to the network's stride and cropped back.

Training (Lightning, manual optimisation so the auxiliary optimiser is CompressAI's):
  - loss ``lmbda * 255**2 * MSE + bpp`` (``metric="mse"``) or ``lmbda * (1 - MS-SSIM) + bpp`` (``metric="ms-ssim"``);
  - main Adam over all parameters except the bottleneck ``quantiles``, and a separate Adam over the quantiles on
    CompressAI's auxiliary loss; both losses are backpropagated together (their gradients touch disjoint
    parameters, so this equals two backward passes, and DDP sees every parameter used);
  - gradient clipping of the main parameters (``clip_max_norm``);
  - validation logs ``val/loss``, ``val/bpp`` (likelihood estimate), ``val/psnr`` (8-bit-rounded RGB) and
    ``val/ms_ssim``.
"""

from __future__ import annotations

import hashlib
import math
import platform
import time

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from codec.bitstream import Payload
from codec.entropy import CdfTables, decode, encode
from codec.entropy.adapters import (
    entropy_bottleneck_dequantize,
    entropy_bottleneck_indexes,
    entropy_bottleneck_symbols,
)
from codec.entropy import intnet
from codec.entropy.models import CDF_BUFFERS, EntropyBottleneck, GaussianConditional, load_entropy_buffers
from codec.errors import BitstreamError, CheckpointError, CodecError


def _psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) over the batch, on 8-bit-rounded images as CompressAI's evaluation does."""
    a = (x.clamp(0, 1) * 255).round()
    b = (x_hat.clamp(0, 1) * 255).round()
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(255.0 ** 2 / mse)).mean()


class ImageCodec(L.LightningModule):
    """Shared training, coding and checkpoint logic of the image codecs (subclasses build the networks)."""

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
        self.automatic_optimization = False
        self._build(self.N, self.M)
        self._tables: dict[str, CdfTables] | None = None
        self._fingerprint: bytes | None = None
        self._train_seconds = 0.0
        self._t_last: float | None = None
        if init_from:
            self._init_weights_from(init_from)

    def _init_weights_from(self, path: str) -> None:
        """Start from the weights of another run (e.g. the base model of a quality ladder): a Lightning training
        checkpoint, a shipped checkpoint or a CompressAI state_dict of the same architecture. Only weights; the
        optimiser starts fresh. (Resuming a run is ``--ckpt_path``, which restores everything.)"""
        from pathlib import Path

        from torch.torch_version import TorchVersion

        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"init_from: checkpoint not found: {p}")
        with torch.serialization.safe_globals([TorchVersion]):
            ck = torch.load(p, map_location="cpu", weights_only=True)
        sd = ck.get("state_dict", ck) if isinstance(ck, dict) else None
        if not isinstance(sd, dict):
            raise CheckpointError(f"init_from: {p} holds no state_dict")
        sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
        try:
            self.load_weights(sd)
        except (RuntimeError, CheckpointError) as e:
            raise CheckpointError(f"init_from: {p} does not fit {type(self).__name__}(N={self.N}, M={self.M}): "
                                  f"{str(e)[:300]}") from None

    # ---------------------------------------------------------------------------------------------------- config
    def _build(self, N: int, M: int) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        """A plain dict that fully rebuilds the architecture (training settings included for the record)."""
        return {"class": type(self).__name__, "N": self.N, "M": self.M}

    # ---------------------------------------------------------------------------------------------------- loading
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Accepts our own and CompressAI's state_dicts (the CDF buffers are resized as CompressAI does)."""
        state_dict = load_entropy_buffers(self, dict(state_dict))
        self._tables = None
        self._fingerprint = None
        self._exact = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def load_weights(self, state_dict: dict) -> None:
        """Strict loading, except that the entropy models' cached CDF buffers (``_quantized_cdf``, ``_offset``,
        ``_cdf_length``) may be absent: shipped checkpoints keep :class:`CdfTables` instead of them."""
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.endswith(CDF_BUFFERS)]
        if missing or unexpected:
            raise CheckpointError(f"weights do not fit {type(self).__name__}(N={self.N}, M={self.M}): "
                                  f"missing {missing[:5]}, unexpected {list(unexpected)[:5]}")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # resize the entropy models' CDF buffers before Lightning loads the state_dict (resume / load_from_checkpoint)
        load_entropy_buffers(self, checkpoint["state_dict"])
        self._train_seconds = float(checkpoint.get("codec_training", {}).get("train_seconds", 0.0))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["codec_training"] = {
            "train_seconds": self._train_seconds,
            "hardware": hardware_description(self.device),
            "world_size": int(getattr(self.trainer, "world_size", 1)) if self._trainer is not None else 1,
            "torch": str(torch.__version__),
        }

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

    def configure_optimizers(self):
        main = [p for n, p in self.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
        aux = [p for n, p in self.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
        opt = torch.optim.Adam(main, lr=self.hparams.lr)
        aux_opt = torch.optim.Adam(aux, lr=self.hparams.aux_lr)
        if self.hparams.lr_milestones:
            sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_milestones),
                                                       gamma=self.hparams.lr_gamma)
            return [opt, aux_opt], [{"scheduler": sch, "interval": "step"}]
        return [opt, aux_opt]

    def training_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        opt, aux_opt = self.optimizers()
        out = self(x)
        rd = self.rate_distortion(x, out)
        aux = self.aux_loss()
        opt.zero_grad()
        aux_opt.zero_grad()
        self.manual_backward(rd["loss"] + aux)
        if self.hparams.clip_max_norm and self.hparams.clip_max_norm > 0:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.clip_max_norm, gradient_clip_algorithm="norm")
        opt.step()
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            aux_opt.step()  # fp16 loss scaling: let Lightning unscale (this step also counts in global_step)
        else:
            aux_opt.optimizer.step()  # raw step, so that trainer.global_step / max_steps count batches
        sch = self.lr_schedulers()
        if sch is not None:
            sch.step()
        now = time.monotonic()
        if self._t_last is not None:
            self._train_seconds += now - self._t_last
        self._t_last = now
        self.log_dict({"train/loss": rd["loss"], "train/bpp": rd["bpp"], "train/mse": rd["mse"], "train/aux": aux},
                      prog_bar=True, on_step=True, on_epoch=False)
        return rd["loss"]

    def on_train_epoch_start(self) -> None:
        self._t_last = None  # do not count validation / data-loader start-up as training time

    def validation_step(self, batch, batch_idx):
        from pytorch_msssim import ms_ssim

        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        out = self(x)
        rd = self.rate_distortion(x, out)
        x_hat = out["x_hat"].clamp(0, 1)
        logs = {"val/loss": rd["loss"], "val/bpp": rd["bpp"], "val/psnr": _psnr(x, x_hat)}
        if min(x.shape[-2:]) > 160:
            logs["val/ms_ssim"] = ms_ssim(x_hat, x, data_range=1.0)
        self.log_dict(logs, prog_bar=False, on_epoch=True, sync_dist=True, batch_size=x.size(0))
        self._t_last = None

    # ---------------------------------------------------------------------------------------------------- tables
    def freeze_tables(self) -> dict[str, CdfTables]:
        """Build the integer CDF tables from the current parameters (export time) and keep them."""
        self._tables = self._compute_tables()
        self._fingerprint = None
        self._exact = None
        return self._tables

    def _compute_tables(self) -> dict[str, CdfTables]:
        raise NotImplementedError

    def set_tables(self, tables: dict[str, CdfTables]) -> None:
        self._tables = dict(tables)

    @property
    def tables(self) -> dict[str, CdfTables]:
        if self._tables is None:
            raise CheckpointError(f"{type(self).__name__} has no frozen CDF tables: load an exported checkpoint "
                                  "(codec export) or call freeze_tables() after training")
        return self._tables

    def table_fingerprint(self) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for k in sorted(self.tables):
            h.update(k.encode() + self.tables[k].fingerprint_bytes)
        return h.digest()

    def fingerprint(self) -> bytes:
        """16 bytes identifying the weights, config and tables: goes into every bitstream header."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(repr(sorted(self.config().items())).encode())
            h.update(intnet.VERSION.encode())  # the integer evaluation of the entropy parameters is part of the model
            for k, v in sorted(self.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            h.update(self.table_fingerprint())
            self._fingerprint = h.digest()
        return self._fingerprint

    # ---------------------------------------------------------------------------------------------------- coding
    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.size(1) != 3:
            raise CodecError(f"expected an image tensor of shape (1, 3, H, W), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.size(0) != 1:
            raise CodecError("compress() codes one image at a time (batch size 1)")
        if x.size(2) < 1 or x.size(3) < 1:
            raise CodecError(f"empty image ({x.size(2)}x{x.size(3)})")

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> tuple[Payload, list[np.ndarray]]:
        """Code one image (1, 3, H, W) in [0, 1]. Returns the payload (real bytes from :mod:`codec.entropy`) and
        the quantised symbol arrays (for the container's checksum)."""
        raise NotImplementedError

    @torch.no_grad()
    def decompress(self, payload: Payload) -> tuple[torch.Tensor, list[np.ndarray]]:
        """Inverse of :meth:`compress`: (reconstruction (1, 3, H, W) in [0, 1], decoded symbol arrays)."""
        raise NotImplementedError

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


def hardware_description(device=None) -> str:
    if device is not None and getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.get_device_name(device)
    import os

    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


class FactorizedPrior(ImageCodec):
    """Ballé et al. 2018 factorized prior ("bmshj2018-factorized"): g_a / g_s with GDN, EntropyBottleneck(M)."""

    codec_name = "factorized-prior"
    stride = 16
    streams = ("y",)

    def __init__(self, N: int = 128, M: int = 192, **kwargs):
        super().__init__(N=N, M=M, **kwargs)

    def _build(self, N, M):
        from compressai.models.google import FactorizedPrior as _Net

        net = _Net(N, M)
        self.g_a, self.g_s = net.g_a, net.g_s
        self.entropy_bottleneck = EntropyBottleneck(M)

    def forward(self, x):
        y = self.g_a(x)
        y_hat, y_lik = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik}}

    def _compute_tables(self):
        return {"bottleneck": self.entropy_bottleneck.tables()}

    @torch.no_grad()
    def compress(self, x):
        self._check_input(x)
        h, w = x.shape[-2:]
        y = self.g_a(self.pad(x))
        data, sym = self._code_z(y)
        return Payload(streams={"y": data}, ints={"size": (h, w)}), [sym]

    @torch.no_grad()
    def decompress(self, payload):
        h, w = self._geometry(payload)
        lh, lw = self._latent_shape(h, w, 16)
        sym, y_hat = self._decode_z(payload.streams.get("y", b""), (1, self.M, lh, lw))
        x_hat = self.g_s(y_hat).clamp_(0, 1)[..., :h, :w]
        return x_hat, [sym]


class ScaleHyperprior(ImageCodec):
    """Ballé et al. 2018 scale hyperprior ("bmshj2018-hyperprior"): z ~ factorized, y ~ N(0, sigma(z))."""

    codec_name = "scale-hyperprior"
    stride = 64
    streams = ("z", "y")
    _net_class = "ScaleHyperprior"

    def _build(self, N, M):
        import compressai.models.google as google

        net = getattr(google, self._net_class)(N, M)
        self.g_a, self.g_s, self.h_a, self.h_s = net.g_a, net.g_s, net.h_a, net.h_s
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

    def _hyper_analysis(self, y):
        return self.h_a(torch.abs(y))

    def _hyper_synthesis(self, z_hat):
        return self.h_s(z_hat), None

    def forward(self, x):
        y = self.g_a(x)
        z = self._hyper_analysis(y)
        z_hat, z_lik = self.entropy_bottleneck(z)
        scales, means = self._hyper_synthesis(z_hat)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    def _compute_tables(self):
        return {"bottleneck": self.entropy_bottleneck.tables(), "gaussian": self.gaussian_conditional.tables()}

    @torch.no_grad()
    def compress(self, x):
        self._check_input(x)
        h, w = x.shape[-2:]
        y = self.g_a(self.pad(x))
        z = self._hyper_analysis(y)
        z_data, z_sym = self._code_z(z)
        idx, means = self.entropy_params(z_sym)
        y_data, y_sym = self._code_y(y, idx, means)
        return Payload(streams={"z": z_data, "y": y_data}, ints={"size": (h, w)}), [z_sym, y_sym]

    @torch.no_grad()
    def decompress(self, payload):
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


class MeanScaleHyperprior(ScaleHyperprior):
    """Minnen et al. 2018 mean-scale hyperprior ("mbt2018-mean"): y ~ N(mu(z), sigma(z)). The default image model."""

    codec_name = "mean-scale-hyperprior"
    _net_class = "MeanScaleHyperprior"
    _mean_scale = True

    def _hyper_analysis(self, y):
        return self.h_a(y)

    def _hyper_synthesis(self, z_hat):
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return scales, means


IMAGE_CODECS = {c.__name__: c for c in (FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior)}


def build_image_codec(config: dict) -> ImageCodec:
    """Rebuild a codec from :meth:`ImageCodec.config`."""
    if not isinstance(config, dict) or config.get("class") not in IMAGE_CODECS:
        raise CheckpointError(f"unknown image codec config {config!r}; known classes: {sorted(IMAGE_CODECS)}")
    return IMAGE_CODECS[config["class"]](N=int(config["N"]), M=int(config["M"]))
