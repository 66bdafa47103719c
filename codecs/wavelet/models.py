"""WaLLoC (Jacobellis and Yadwadkar, "Learned Compression for Compressed Learning"): wavelet packet transform +
shallow asymmetric autoencoder + entropy bottleneck by companding, for 1D (audio) and 2D (image) signals.

    x in [-0.5, 0.5] -> WPT (J levels, every subband split; C*4**J channels in 2D, C*2**J in 1D, at 1/2**J size)
      -> encoder ("linear": one 1x1 convolution, the paper's lightweight encoder; or "deep": a small conv stack)
      -> compand: latent_max * erf(y / sqrt 2)  (the Gaussian CDF mapped to +-latent_max)
      -> + uniform noise (training) / round (coding) -> integers in [-(2**(bits-1) - 1), 2**(bits-1) - 1]
      -> inverse compand (sqrt 2 * erfinv) -> decoder at latent resolution (ResNet blocks + one attention block,
         no upsampling) -> inverse WPT -> clamp to [-0.5, 0.5]

Training loss: plain MSE (no rate term, no adversarial or perceptual loss); the rate is set by latent_dim and
latent_bits. The integer latents are entropy-coded through :mod:`codec.entropy` with a learned context model
(:class:`codec.entropy.context.ContextModel`): its symbol counts are an exponential moving average over the
training latents (``prior_counts``), frozen into CdfTables at export.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.bitstream import Payload
from codec.codecs.base import CodecModule, as_batch, pad_to, register_codec
from codec.codecs.wavelet.transform import WaveletPacket
from codec.entropy import CdfTables
from codec.entropy import neural
from codec.entropy.context import ContextModel
from codec.errors import BitstreamError, CheckpointError, CodecError, EntropyError


def _conv(ndim: int):
    return nn.Conv1d if ndim == 1 else nn.Conv2d


class ChannelNorm(nn.Module):
    """LayerNorm over the channels at each position: unlike GroupNorm it has no statistics over time or space, so
    a signal decoded in chunks gives the same result as decoded whole (used by the 1D codec)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def _norm(kind: str, width: int) -> nn.Module:
    return nn.GroupNorm(8, width) if kind == "group" else ChannelNorm(width)


class ResBlock(nn.Module):
    def __init__(self, ndim: int, width: int, norm: str = "group"):
        super().__init__()
        conv = _conv(ndim)
        self.n1, self.c1 = _norm(norm, width), conv(width, width, 3, padding=1)
        self.n2, self.c2 = _norm(norm, width), conv(width, width, 3, padding=1)

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        return x + self.c2(F.silu(self.n2(h)))


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions (scaled_dot_product_attention: no quadratic buffer on CPU)."""

    def __init__(self, ndim: int, width: int, norm: str = "group"):
        super().__init__()
        conv = _conv(ndim)
        self.norm, self.qkv, self.out = _norm(norm, width), conv(width, 3 * width, 1), conv(width, width, 1)

    def forward(self, x):
        shape = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(h.transpose(1, 2).reshape(shape))


class WaveletCodec(CodecModule):
    """Shared WaLLoC logic; :class:`Codec2D` (images) and :class:`Codec1D` (audio) fix the dimensionality."""

    ndim = 2
    codec_name = "walloc"
    single_table = "latent"
    #: EMA symbol statistics: the frozen tables replace them in shipped checkpoints
    not_shipped = ("prior_counts",)

    def __init__(self, channels: int = 3, J: int = 3, latent_dim: int = 12, latent_bits: int = 8,
                 encoder: str = "linear", decoder_width: int = 128, decoder_blocks: int = 2,
                 wavelet: str = "bior4.4", lr: float = 1e-3, weight_decay: float = 0.0,
                 lr_milestones: list | None = None, lr_gamma: float = 0.1, prior_decay: float = 0.999,
                 context_levels: int = 4, norm: str | None = None, init_from: str | None = None,
                 context_cross: int = 0, prior_smoothing: float = 1.0, context_nn: dict | None = None):
        super().__init__()
        if encoder not in ("linear", "deep"):
            raise CodecError(f"encoder must be 'linear' or 'deep', not {encoder!r}")
        if not 2 <= int(latent_bits) <= 12:
            raise CodecError(f"latent_bits must be in 2..12, got {latent_bits}")
        norm = norm or ("group" if self.ndim == 2 else "channel")
        if norm not in ("group", "channel"):
            raise CodecError(f"norm must be 'group' or 'channel', not {norm!r}")
        if int(decoder_width) % 8:
            raise CodecError(f"decoder_width must be a multiple of 8 (GroupNorm groups), got {decoder_width}")
        self.save_hyperparameters()
        self.channels, self.J, self.latent_dim, self.latent_bits = int(channels), int(J), int(latent_dim), int(latent_bits)
        self.encoder_kind, self.decoder_width, self.decoder_blocks = encoder, int(decoder_width), int(decoder_blocks)
        self.norm = norm
        self.wavelet = wavelet
        self.wpt = WaveletPacket(self.J, self.ndim, wavelet)
        conv = _conv(self.ndim)
        cin = self.wpt.channels(self.channels)
        if encoder == "linear":
            self.encoder = conv(cin, self.latent_dim, 1)
        else:
            w = max(self.latent_dim, min(cin, 4 * self.latent_dim))
            self.encoder = nn.Sequential(conv(cin, w, 1), nn.GELU(), conv(w, w, 3, padding=1), nn.GELU(),
                                         conv(w, self.latent_dim, 1))
        width = self.decoder_width
        self.decoder = nn.Sequential(
            conv(self.latent_dim, width, 3, padding=1),
            *[ResBlock(self.ndim, width, norm) for _ in range(self.decoder_blocks)],
            AttnBlock(self.ndim, width, norm),
            *[ResBlock(self.ndim, width, norm) for _ in range(self.decoder_blocks)],
            _norm(norm, width), nn.SiLU(), conv(width, cin, 3, padding=1))
        self.context = ContextModel(self.latent_dim, self.ndim, self.symbol_max, levels=int(context_levels),
                                    cross=int(context_cross))
        if self.context.cross:  # least-squares cross-channel prediction weights (64ths; all zero = none)
            self.register_buffer("context_weights", torch.zeros(
                self.context.levels, self.context.phases, self.latent_dim, self.latent_dim, dtype=torch.int32))
        self.register_buffer("prior_counts", torch.zeros(self.context.num_tables, self.context.alphabet,
                                                         dtype=torch.float64))
        self.context_nn = self._nn_settings(context_nn)
        self.neural = None  # NeuralContext once its integer networks are fitted (refit_prior / a shipped file)
        if self.context_nn:
            for k, shape in self._nn_shapes().items():
                self.register_buffer(k, torch.zeros(shape, dtype=torch.int32))
            self.register_buffer("nn_prior_counts", torch.zeros(neural.NUM_TABLES, self.context.alphabet,
                                                                dtype=torch.float64))
        if init_from:
            self.init_from(init_from)

    # ------------------------------------------------------------------------------------------------ config
    NN_DEFAULTS = {"levels": 2, "width": 48, "head": 16, "steps": 8000, "seed": 0, "data": []}

    def _nn_settings(self, settings) -> dict | None:
        """The neural context model's settings (None: off): pyramid ``levels`` it codes, trunk ``width``, per-channel
        ``head`` units, training ``steps`` per network, ``seed``, and ``data``: image folders the prior is fitted on
        besides the model's training images (e.g. the training set's held-out split; never the evaluation images)."""
        if not settings:
            return None
        if self.ndim != 2:
            raise CodecError("the neural context model (context_nn) is implemented for the image model (2D)")
        if not isinstance(settings, dict) or set(settings) - set(self.NN_DEFAULTS):
            raise CodecError(f"context_nn must be a dict with keys among {sorted(self.NN_DEFAULTS)}, got {settings!r}")
        data = settings.get("data") or []
        if isinstance(data, str) or not all(isinstance(d, str) for d in data):
            raise CodecError(f"context_nn data must be a list of image folders, got {data!r}")
        out = dict(self.NN_DEFAULTS, **{k: int(v) for k, v in settings.items() if k != "data"}, data=list(data))
        if not 1 <= out["levels"] <= self.context.levels:
            raise CodecError(f"context_nn levels must be in 1..{self.context.levels}, got {out['levels']}")
        if not (1 <= out["width"] <= 256 and 1 <= out["head"] <= 64 and out["steps"] >= 1):
            raise CodecError(f"context_nn width must be in 1..256, head in 1..64, steps >= 1: {out}")
        return out

    def _nn_shapes(self) -> dict:
        C, w, h = self.latent_dim, self.context_nn["width"], self.context_nn["head"]
        out = {}
        for lev in range(self.context_nn["levels"]):
            for ph in range(3):
                shapes = {"w0": (w, (1 + ph) * C, 3, 3), "b0": (w,), "w1": (w, w, 3, 3), "b1": (w,),
                          "w2": (w, w, 3, 3), "b2": (w,), "hf": (C * h, w), "hfb": (C * h,), "hv": (C * h, C),
                          "ow": (C, 2, h), "ob": (C, 2), "sf": (C, 2, w), "sv": (C, 2, C)}
                out.update({f"cnn_l{lev}p{ph}_{k}": v for k, v in shapes.items()})
        return out

    @property
    def coder(self):
        """What codes the latents: the neural context model when configured, else the context model."""
        if self.context_nn:
            if self.neural is None:
                raise CheckpointError("this WaLLoC model's neural context model is not fitted: export it with "
                                      "codec export (it trains the context networks on the training images)")
            return self.neural
        return self.context

    @property
    def latent_max(self) -> float:
        return 2.0 ** (self.latent_bits - 1) - 0.5

    @property
    def symbol_max(self) -> int:
        return 2 ** (self.latent_bits - 1) - 1

    @property
    def stride(self) -> int:
        return self.wpt.factor

    def config(self) -> dict:
        return {"class": type(self).__name__, "channels": self.channels, "J": self.J, "latent_dim": self.latent_dim,
                "latent_bits": self.latent_bits, "encoder": self.encoder_kind, "decoder_width": self.decoder_width,
                "decoder_blocks": self.decoder_blocks, "wavelet": self.wavelet,
                "context_levels": self.context.levels, "norm": self.norm,
                **({"context_cross": self.context.cross} if self.context.cross else {}),
                **({"prior_smoothing": float(self.hparams.prior_smoothing)}
                   if float(self.hparams.prior_smoothing) != 1.0 else {}),
                **({"context_nn": dict(self.context_nn)} if self.context_nn else {})}

    def reduction(self) -> float:
        """Dimensionality-reduction factor: input values per latent value."""
        return self.wpt.channels(self.channels) / self.latent_dim

    def _optional_key(self, key: str) -> bool:
        # context settings may have changed (refitted at export): their buffers may be absent or left over
        return key in ("prior_counts", "context_weights", "nn_prior_counts") or key.startswith("cnn_")

    def load_weights(self, state_dict: dict) -> None:
        """Strict loading, except for the context model's statistics and fitted weights (refitted at export)."""
        super().load_weights(state_dict)
        self._sync_context()
        self._tables, self._fingerprint = None, None

    def _sync_context(self) -> None:
        """Hand the cross-channel prediction weights (buffer ``context_weights``) to the context model."""
        if self.context.cross:
            w = self.context_weights.cpu().numpy().astype(np.int64)
            try:
                self.context.set_weights(w if w.any() else None)
            except EntropyError as e:
                raise CheckpointError(f"bad cross-channel context weights: {e}") from None
        self.neural = None
        if self.context_nn:
            arrays = {k[4:]: getattr(self, k).cpu().numpy() for k in self._nn_shapes()}
            if any(a.any() for a in arrays.values()):
                try:
                    self.neural = neural.NeuralContext(
                        self.context, neural.nets_from_arrays(arrays, self.context_nn["levels"]))
                except EntropyError as e:
                    raise CheckpointError(f"bad neural context model weights: {e}") from None

    @classmethod
    def training_record(cls, hparams: dict, data: dict, checkpoint: dict) -> dict:
        return {**super().training_record(hparams, data, checkpoint), "loss": "mse", "crop": data.get("crop_size"),
                "excerpt": data.get("excerpt"), "sample_rate": data.get("sample_rate"),
                "loudness": data.get("loudness"),
                "prior": f"context-model symbol counts, EMA over training latents (decay {hparams.get('prior_decay')})"}

    @classmethod
    def apply_export_options(cls, config: dict, state_dict: dict, options: dict) -> tuple[dict, dict]:
        config, state_dict = super().apply_export_options(config, state_dict, options)
        return config, {k: v for k, v in state_dict.items() if not k.startswith("cnn_")}  # refitted

    def prepare_export(self, source: dict) -> dict:
        """New context settings (or an unfitted neural context model): refit the prior on the training images the
        source records. A shipped checkpoint re-exported as it is keeps its frozen tables (its counts are not
        shipped)."""
        if source.get("options") or self.needs_refit:
            data = (source.get("training") or {}).get("data")
            if not data:
                raise CheckpointError("the checkpoint records no training images to refit the context-model prior on")
            return self.refit_prior(data)
        if float(self.prior_counts.sum()) == 0 and source.get("tables") is not None:
            self.set_tables(source["tables"])
        return {}

    @property
    def needs_refit(self) -> bool:
        """True when a neural context model is configured but not fitted yet (export fits it)."""
        return bool(self.context_nn) and self.neural is None

    # ------------------------------------------------------------------------------------------------ network
    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Media range (images [0, 1], audio [-1, 1]) -> the model's [-0.5, 0.5]."""
        raise NotImplementedError

    def to_media(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compand(self, y: torch.Tensor) -> torch.Tensor:
        return self.latent_max * torch.erf(y / math.sqrt(2.0))

    def expand(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse companding at the decoder input (clamped so that +-latent_max stay finite)."""
        r = (v / self.latent_max).clamp(-0.9999, 0.9999)
        return math.sqrt(2.0) * torch.erfinv(r)

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Companded (continuous) latent of x in [-0.5, 0.5] (sizes multiples of the stride)."""
        return self.compand(self.encoder(self.wpt.analysis(x)))

    def quantize(self, v: torch.Tensor) -> torch.Tensor:
        return torch.round(v).clamp_(-self.symbol_max, self.symbol_max)

    def decode_latent(self, v: torch.Tensor) -> torch.Tensor:
        return self.wpt.synthesis(self.decoder(self.expand(v))).clamp(-0.5, 0.5)

    def forward(self, x: torch.Tensor) -> dict:
        v = self.encode_latent(x)
        v_hat = v + torch.empty_like(v).uniform_(-0.5, 0.5) if self.training else self.quantize(v)
        return {"x_hat": self.decode_latent(v_hat), "latent": v}

    # ------------------------------------------------------------------------------------------------ training
    def configure_optimizers(self, task):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.lr_milestones:
            sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_milestones),
                                                       gamma=self.hparams.lr_gamma)
            return [opt], [{"scheduler": sch, "interval": "step"}]
        return opt

    @torch.no_grad()
    def update_prior(self, v: torch.Tensor) -> None:
        """Fold the symbols of a batch of latents into the EMA counts of the context model."""
        sym = self.quantize(v.detach().float()).to(torch.int32).cpu().numpy()
        counts = torch.from_numpy(self.context.count(sym)).to(self.prior_counts)
        d = float(self.hparams.prior_decay)
        self.prior_counts.mul_(d).add_(counts)

    def training_step(self, task, batch, batch_idx):
        x = self.to_model(as_batch(batch))
        out = self(x)
        loss = F.mse_loss(out["x_hat"], x)
        self.update_prior(out["latent"])
        task.log("train/mse", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, task, batch, batch_idx):
        x = self.to_model(as_batch(batch))
        out = self(x)
        mse = F.mse_loss(out["x_hat"], x)
        task.log_dict({"val/mse": mse, "val/psnr": 10 * torch.log10(1.0 / mse.clamp_min(1e-10))},
                      on_epoch=True, sync_dist=True, batch_size=x.size(0))

    # ------------------------------------------------------------------------------------------------ tables
    @torch.no_grad()
    def refit_prior(self, data: list) -> dict:
        """Replace the context model's symbol counts by counts over whole training images (``data``: folders or
        files, ``data:`` meaning the shared data root), e.g. after a change of the context model. Returns the
        training-record entry. Images only (2D)."""
        from codec.config import spec_path
        from codec.media import load_image

        if self.ndim != 2:
            raise CheckpointError("refitting the context-model prior is implemented for the image model (2D)")
        data = list(data or []) + [d for d in (self.context_nn or {}).get("data", []) if d not in (data or [])]
        files = []
        for d in data:
            p = spec_path(d)
            files += sorted(q for q in (p.rglob("*") if p.is_dir() else [p])
                            if q.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
        if not files:
            raise CheckpointError(f"no training images found in {data} to refit the context-model prior on")
        lat = [self.latent_symbols(torch.from_numpy(np.array(load_image(f))).permute(2, 0, 1)[None].float() / 255)
               for f in files]
        how = ""
        if self.context.cross:
            self.context_weights.copy_(torch.from_numpy(self.context.fit_weights(lat).astype(np.int32)))
            self._sync_context()
            how = " and least-squares cross-channel prediction weights fitted on the same latents"
        counts = np.zeros((self.context.num_tables, self.context.alphabet), dtype=np.float64)
        for sym in lat:
            counts += self.context.count(sym)
        self.prior_counts.copy_(torch.from_numpy(counts))
        if self.context_nn:
            import os
            import sys

            s = self.context_nn
            from codec.entropy import neural_train

            nets = neural_train.train_nets([a[0] for a in lat], levels=s["levels"], width=s["width"], head=s["head"],
                                     steps=s["steps"], seed=s["seed"], log=lambda m: print(m, file=sys.stderr),
                                     workers=os.cpu_count() or 1)
            for k, v in neural.nets_to_arrays(nets).items():
                getattr(self, "cnn_" + k).copy_(torch.from_numpy(v.astype(np.int32)))
            self._sync_context()
            nn_counts = sum(self.neural.count(sym) for sym in lat)
            self.nn_prior_counts.copy_(torch.from_numpy(nn_counts.astype(np.float64)))
            how += (f"; neural context model on the finest {s['levels']} pyramid levels (integer CNNs, width "
                    f"{s['width']}, head {s['head']} with a linear skip, {s['steps']} Adam steps each, seed "
                    f"{s['seed']}; coarser levels trained on all 4**level polyphase views) trained and its tables "
                    "counted on the same latents")
        self._tables, self._fingerprint = None, None
        return {"prior": f"context-model symbol counts over {len(files)} whole images "
                         f"({', '.join(map(str, data))}), refitted at export; cross-channel context weight "
                         f"{self.context.cross}{how}"}

    def _compute_tables(self) -> dict[str, CdfTables]:
        if float(self.prior_counts.sum()) <= 0:
            raise CheckpointError("the latent prior has no counts: train the model (or call update_prior on "
                                  "training latents) before freezing its tables")
        sm = float(self.hparams.prior_smoothing)
        if self.context_nn:
            if self.neural is None or float(self.nn_prior_counts.sum()) <= 0:
                raise CheckpointError("the neural context model is not fitted: refit it (codec export runs "
                                      "refit_prior on the training images) before freezing its tables")
            return {"latent": self.neural.tables(self.prior_counts.cpu().numpy(),
                                                 self.nn_prior_counts.cpu().numpy(), smoothing=sm)}
        return {"latent": self.context.tables(self.prior_counts.cpu().numpy(), smoothing=sm)}


    # ------------------------------------------------------------------------------------------------ coding
    @torch.no_grad()
    def decode_symbols(self, sym: torch.Tensor) -> torch.Tensor:
        """Reconstruction in the media range from integer latents (float tensor)."""
        return self.to_media(self.decode_latent(sym))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect-pad to the stride (replicate when the input is shorter than the padding)."""
        pads = [(-n) % self.stride for n in x.shape[2:]]
        mode = "reflect" if min(x.shape[2:]) > max(pads) else "replicate"
        return pad_to(x, self.stride, self.ndim, mode)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != self.ndim + 2 or x.size(0) != 1 or x.size(1) != self.channels:
            want = f"(1, {self.channels}, {'T' if self.ndim == 1 else 'H, W'})"
            raise CodecError(f"{type(self).__name__} codes one signal of shape {want}, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if min(x.shape[2:]) < 1:
            raise CodecError(f"empty input {tuple(x.shape)}")

    @torch.no_grad()
    def latent_symbols(self, x: torch.Tensor) -> np.ndarray:
        """Integer latents (what is entropy-coded) of signals x (B, C, ...) in the media range, padded to the
        stride. Also the input of compressed-domain learning."""
        return self.quantize(self.encode_latent(self.pad(self.to_model(x)))).to(torch.int32).cpu().numpy()

    @torch.no_grad()
    def _compress(self, x: torch.Tensor) -> tuple[Payload, list[np.ndarray]]:
        """Code one signal (1, C, ...) in the media range (images [0, 1], audio [-1, 1]): real bytes from
        :mod:`codec.entropy`."""
        self._check_input(x)
        sym = self.latent_symbols(x)
        data = self.coder.encode(sym, self.tables["latent"])
        return Payload(streams={"latent": data}, ints={"size": tuple(x.shape[2:])}), [sym]

    def _payload_size(self, payload: Payload) -> tuple[int, ...]:
        size = tuple(int(s) for s in payload.ints.get("size", ()))
        if len(size) != self.ndim or min(size) < 1 or max(size) > (1 << 31):
            raise BitstreamError(f"{type(self).__name__} payload has no valid size (got {size})")
        if "latent" not in payload.streams:
            raise BitstreamError("payload has no 'latent' stream")
        return size

    def expected_symbols(self, payload: Payload) -> dict[str, int]:
        n = self.latent_dim
        for s in self._payload_size(payload):
            n *= -(-s // self.stride)
        return {"latent": n}

    @torch.no_grad()
    def _decompress(self, payload: Payload) -> tuple[torch.Tensor, list[np.ndarray]]:
        size = self._payload_size(payload)
        lat = tuple(-(-n // self.stride) for n in size)
        sym = self.coder.decode(payload.streams["latent"], (1, self.latent_dim) + lat, self.tables["latent"])
        x_hat = self.decode_symbols(torch.from_numpy(sym.astype(np.float32)).to(self.device))
        crop = (Ellipsis,) + tuple(slice(0, n) for n in size)
        return x_hat[crop], [sym]


@register_codec
class Codec2D(WaveletCodec):
    """WaLLoC for images (C channels, default RGB): x in [-0.5, 0.5], shape (B, C, H, W)."""

    export_options = frozenset({"context_cross", "prior_smoothing", "context_nn"})
    export_options_kind = "context-prior"

    ndim = 2
    codec_name = "walloc-2d"
    modality = "image"

    def to_model(self, x):
        return x - 0.5

    def to_media(self, x):
        return x + 0.5


@register_codec
class Codec1D(WaveletCodec):
    """WaLLoC for audio (C channels, default stereo): x in [-0.5, 0.5] (audio in [-1, 1] halved), (B, C, T)."""

    ndim = 1
    codec_name = "walloc-1d"
    modality = "audio"

    def to_model(self, x):
        return x * 0.5

    def to_media(self, x):
        return x * 2.0

    def __init__(self, channels: int = 2, J: int = 8, latent_dim: int = 108, latent_bits: int = 8,
                 decoder_width: int = 256, sample_rate: int = 48000, chunk: int = 1024, margin: int = 32,
                 **kwargs):
        super().__init__(channels=channels, J=J, latent_dim=latent_dim, latent_bits=latent_bits,
                         decoder_width=decoder_width, **kwargs)
        if int(sample_rate) < 1 or int(chunk) < 1 or int(margin) < 0:
            raise CodecError("sample_rate and chunk must be positive, margin non-negative")
        self.sample_rate, self.chunk, self.margin = int(sample_rate), int(chunk), int(margin)

    def config(self) -> dict:
        return dict(super().config(), sample_rate=self.sample_rate, chunk=self.chunk, margin=self.margin)

    # Long signals are coded in bounded memory: the analysis (WPT + encoder) and the synthesis (decoder + inverse
    # WPT) run on chunks of ``chunk`` latent frames with ``margin`` frames of context on each side, and only the
    # centre of each chunk is kept, so there are no seams (the context covers the filters' support and most of
    # the decoder's receptive field; the attention block sees chunk + margins). Both ends of the signal are
    # extended by ``margin`` frames (reflection), so the result does not depend on where the chunks fall.
    def _ext(self, x: torch.Tensor, m: int) -> torch.Tensor:
        if m == 0:
            return x
        mode = "reflect" if x.shape[-1] > m else "replicate"
        return F.pad(x, (m, m), mode=mode)

    def _chunks(self, x: torch.Tensor, fn, scale_in: int, scale_out: int) -> torch.Tensor:
        """Apply ``fn`` to overlapping chunks of ``x`` (frames of ``scale_in`` samples) and join the centres."""
        m = self.margin
        n = x.shape[-1] // scale_in
        xe = self._ext(x, m * scale_in)
        out = []
        for s in range(0, n, self.chunk):
            e = min(n, s + self.chunk)
            y = fn(xe[..., s * scale_in:(e + 2 * m) * scale_in])
            out.append(y[..., m * scale_out:(m + e - s) * scale_out])
        return torch.cat(out, -1)

    @torch.no_grad()
    def latent_symbols(self, x: torch.Tensor) -> np.ndarray:
        x = self.pad(self.to_model(x))
        v = self._chunks(x, lambda c: self.quantize(self.encode_latent(c)), self.stride, 1)
        return v.to(torch.int32).cpu().numpy()

    @torch.no_grad()
    def decode_symbols(self, sym: torch.Tensor) -> torch.Tensor:
        return self.to_media(self._chunks(sym, self.decode_latent, 1, self.stride))
