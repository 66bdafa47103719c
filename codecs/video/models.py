"""A learned low-delay video codec built on the shipped image codec, with a spatiotemporal entropy model.

Design (after "Spatiotemporal Entropy Model is All You Need for Learned Video Compression": code raw frames with
one autoencoder and let the entropy model remove the temporal redundancy; no motion estimation):

- Every frame goes through the shipped image codec's transforms unchanged: ``y_t = g_a(x_t)``, hyper-latent
  ``z_t = h_a(y_t)`` coded with its factorized bottleneck, hyper-decoder ``(sigma_h, mu_h) = h_s(z_hat_t)``.
- **Intra frames** (``t % intra_period == 0``; default one per 32) are coded exactly as the image codec codes an
  image: ``y_t ~ N(mu_h, sigma_h)``.
- **P frames** add a temporal prior, a small convolutional network at latent resolution
  (:class:`TemporalPrior`) that predicts the mean and scale of ``y_t`` from the hyperprior ``(mu_h, sigma_h)`` AND
  the previous decoded frame's latent ``y_hat_{t-1}``. ``y_hat_t = mu_t + round(y_t - mu_t)``: the quantisation
  error is at most 0.5 per element whatever the prediction, so nothing drifts; the prediction only changes the
  bits. Decoding frame t uses only frames before it (low delay). The encoder also evaluates each P frame's intra
  coding and keeps the cheaper of the two (one mode bit per frame, in the ``modes`` stream), so a frame the prior
  predicts badly (a scene cut) never costs more than an intra frame.
- All symbols go through :mod:`codec.entropy`: the image codec's frozen tables (bottleneck and Gaussian) are joined
  into one :class:`~codec.entropy.CdfTables` so a frame's ``z`` and ``y`` code into one rANS stream; one stream
  per segment of frames (a new segment at every intra frame and at least every 32 frames), so memory stays
  bounded for long clips. Container: one ``.cdc`` per clip (frame count, size and frame rate in the header).

Colour: clips are 4:2:0 YCbCr (BT.601, limited range). Frames are converted to RGB for the image codec (chroma
upsampled by pixel repetition) and the decoded RGB back to 4:2:0 (chroma averaged over 2x2), so an uncoded round
trip returns the input exactly (apart from RGB values outside [0, 1], which are kept, not clipped).

Training (``train/fit.py`` with :class:`codec.train.data.VideoClipsData`): the image codec is frozen (its weights
come from its shipped checkpoint, named in the config and checked by sha256); only the temporal prior learns, on
the rate of ``y`` for groups of consecutive frames (straight-through rounding, the inference quantiser). This is
the cheap first stage the design allows; a joint fine-tune of the transforms is not done.
"""

from __future__ import annotations

import hashlib
import math
import time

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.bitstream import Payload, SymbolsHasher
from codec.entropy import CdfTables, Decoder, Encoder, intnet
from codec.entropy.adapters import entropy_bottleneck_indexes, entropy_bottleneck_symbols
from codec.errors import BitstreamError, CheckpointError, CodecError

#: a new rANS stream starts at every intra frame and at least every SEGMENT frames (bounded encoder memory)
SEGMENT = 32
MAX_FRAMES = 1 << 24
#: P frames: one prior per BLOCK x BLOCK latent positions (BLOCK 1: each 16 x 16 pixels), chosen by the encoder
BLOCK = 1
#: block modes: intra (hyperprior), learned temporal prior, then COPY_CLASSES copy modes (mean = the previous
#: decoded latent; each class has its own scales, so blocks that change little and blocks that change more are
#: told apart by the encoder)
MODE_INTRA, MODE_LEARNED, MODE_COPY = 0, 1, 2
COPY_CLASSES = 2
NMODES = MODE_COPY + COPY_CLASSES


def _compositions(total: int, parts: int):
    if parts == 1:
        yield (total,)
        return
    for a in range(total + 1):
        for rest in _compositions(total - a, parts - 1):
            yield (a,) + rest


#: the block-mode map codes with one of these probability vectors (counts of the modes out of 12, plus 0.2), the
#: one the encoder picks for the frame (its index is signalled)
MODE_PMFS = [tuple(c + 0.2 for c in comp) for comp in _compositions(12, NMODES)]
#: copy-mode scales: one Gaussian table index per bin of the hyperprior's scale index, signalled per P frame
BINS = 16
#: the P-frame format this module writes (payload int ``pformat``); files without it predate block modes
PFORMAT = 5
_COPY_RANGE = 64  # copy-scale fitting counts residuals in [-64, 64] (larger ones as +-64)


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


def mode_pmf_index(modes: np.ndarray) -> int:
    """Index of the :data:`MODE_PMFS` vector that codes this block-mode map in fewest bits."""
    counts = np.bincount(np.asarray(modes).reshape(-1), minlength=NMODES)
    logp = np.log2(np.asarray(MODE_PMFS) / np.asarray(MODE_PMFS).sum(1, keepdims=True))
    return int(np.argmin(-(logp @ counts)))


# --------------------------------------------------------------------------------------------------------------
# the temporal prior
# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# the image codec underneath
# --------------------------------------------------------------------------------------------------------------
def load_image_codec(spec: str, expected_sha256: str | None = None):
    """A fresh (not the process-wide cached) copy of a shipped hyperprior image model: ``(model, name, sha256)``.
    ``spec``: a shipped model name (``msh-q4``) or a ``.pt`` file."""
    from pathlib import Path

    from codec.checkpoints import checkpoints_dir, load_checkpoint_file, resolve_entry, sha256_file

    s = str(spec)
    if s.endswith(".pt") or "/" in s:
        p = Path(s)
        if not p.is_file():
            raise CheckpointError(f"image checkpoint not found: {p}")
        sha = sha256_file(p)
        model = load_checkpoint_file(p, name=p.stem)
        name = p.stem
    else:
        e = resolve_entry(s, None, "image")
        sha = e.get("sha256", "")
        model = load_checkpoint_file(checkpoints_dir() / e["file"], sha, name=e["name"])
        name = e["name"]
    if expected_sha256 and sha != expected_sha256:
        raise CheckpointError(f"this video model was trained on image model {s!r} with sha256 "
                              f"{expected_sha256[:16]}..., the shipped one is {sha[:16]}...: re-train or re-export "
                              "the video model for it")
    if not hasattr(model, "gaussian_conditional") or not hasattr(model, "h_s"):
        raise CheckpointError(f"the video codec needs a hyperprior image model (ScaleHyperprior or "
                              f"MeanScaleHyperprior), not {type(model).__name__}")
    return model, name, sha


def _round_cpu(x: torch.Tensor, mean_int: torch.Tensor) -> np.ndarray:
    """Encoder side: int64 ``round(x - mean)`` for a float ``x`` and a fixed-point mean (numpy, on the CPU)."""
    return torch.round(x - intnet.from_fixed(mean_int)).to(torch.int64).cpu().numpy()


def _fixed_latent(sym: np.ndarray, means_int: torch.Tensor) -> torch.Tensor:
    """The decoded latent in fixed point: ``symbol * 2**A_BITS + mean`` (int64, exact)."""
    return (torch.from_numpy(np.asarray(sym, dtype=np.int64)).to(means_int.device) << intnet.A_BITS) + means_int


def _write_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(buf) or shift > 56:
            raise BitstreamError("video payload is truncated or corrupt (segment length)")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


class LatentVideoCodec(L.LightningModule):
    """P-frame video codec: a frozen shipped hyperprior image codec + a learned temporal prior (module docstring)."""

    codec_name = "latent-video"
    modality = "video"

    def __init__(self, image_model: str = "msh-q4", width: int = 128, layers: int = 3, dilations: list | None = None,
                 intra_period: int = 32,
                 lr: float = 1e-4, clip_max_norm: float = 1.0, lr_milestones: list | None = None,
                 lr_gamma: float = 0.1, image_sha256: str | None = None, init_from: str | None = None):
        super().__init__()
        if int(intra_period) < 0:
            raise CodecError(f"intra_period must be >= 0 (0 = only the first frame), got {intra_period}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        image, name, sha = load_image_codec(image_model, image_sha256)
        for p in image.parameters():
            p.requires_grad_(False)
        self.image = image.eval()
        self.image_name, self.image_sha256 = name, sha
        self.M, self.N = int(image.M), int(image.N)
        self.temporal = TemporalPrior(self.M, int(width), int(layers), dilations)
        self.intra_period = int(intra_period)
        self._joint: CdfTables | None = None
        self._fingerprint: bytes | None = None
        self._train_seconds = 0.0
        self._t_last: float | None = None
        if init_from:
            self._init_from(init_from)

    def _init_from(self, path: str) -> None:
        """Start the temporal prior from another run's weights (a Lightning or shipped video checkpoint), e.g. the
        middle quality's prior for the other qualities of the ladder. Only weights; the optimiser starts fresh."""
        from pathlib import Path

        from torch.torch_version import TorchVersion

        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"init_from: checkpoint not found: {p}")
        with torch.serialization.safe_globals([TorchVersion]):
            ck = torch.load(p, map_location="cpu", weights_only=True)
        sd = ck.get("state_dict") if isinstance(ck, dict) else None
        if not isinstance(sd, dict):
            raise CheckpointError(f"init_from: {p} holds no state_dict")
        self.load_weights({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()})

    # ---------------------------------------------------------------------------------------------------- config
    def config(self) -> dict:
        hp = self.hparams
        return {"class": type(self).__name__, "image_model": self.image_name, "image_sha256": self.image_sha256,
                "width": int(hp.width), "layers": int(hp.layers), "intra_period": self.intra_period,
                **({"dilations": [int(d) for d in hp.dilations]} if hp.dilations else {})}

    def train(self, mode: bool = True):
        super().train(mode)
        self.image.eval()  # frozen: never in training mode
        return self

    def load_weights(self, state_dict: dict) -> None:
        """The temporal prior's weights (``temporal.*``); the image codec's come from its own checkpoint."""
        sd = {k[len("temporal."):]: v for k, v in state_dict.items() if k.startswith("temporal.")}
        try:
            self.temporal.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"weights do not fit the temporal prior: {str(e)[:300]}") from None
        self._fingerprint = None
        self._int_temporal = None

    def shipped_state_dict(self) -> dict:
        return {f"temporal.{k}": v for k, v in self.temporal.state_dict().items()}

    # ---------------------------------------------------------------------------------------------------- tables
    def freeze_tables(self) -> dict:
        """Nothing of its own: P and intra frames code with the image checkpoint's frozen tables."""
        self._joint = None
        return {}

    def set_tables(self, tables: dict) -> None:
        if tables:
            raise CheckpointError("a video checkpoint holds no tables of its own (they are the image model's)")

    @property
    def tables(self) -> dict:
        return self.image.tables

    def joint_tables(self) -> CdfTables:
        """The image model's bottleneck tables, then its Gaussian tables, then two uniform side-information tables
        (copy-mode scale indexes over 0..255, block modes over 0..2): one rANS stream per segment."""
        if self._joint is None:
            t = self.image.tables
            pmfs = [np.full(t["gaussian"].num_tables, 1.0), np.full(len(MODE_PMFS), 1.0)]
            pmfs += [np.asarray(p) / sum(p) for p in MODE_PMFS]
            side = CdfTables.from_pmfs(pmfs, offsets=0, precision=t["gaussian"].precision, tail_mass=1e-6)
            self._joint = CdfTables.concatenate([t["bottleneck"], t["gaussian"], side])
            self._copy_cost = None
        return self._joint

    def _table_layout(self) -> tuple[int, int, int]:
        """(first Gaussian table, copy-scale side table, mode-pmf index table; the block-mode tables follow it) in
        :meth:`joint_tables`."""
        t = self.image.tables
        nb, ng = t["bottleneck"].num_tables, t["gaussian"].num_tables
        return nb, nb + ng, nb + ng + 1

    def _copy_costs(self) -> np.ndarray:
        """bits[k, v + R] of residual v in [-R, R] under Gaussian table k (exact, from the frozen tables)."""
        if getattr(self, "_copy_cost", None) is None:
            tables = self.joint_tables()
            g0 = self._table_layout()[0]
            ng = self.image.tables["gaussian"].num_tables
            v = np.arange(-_COPY_RANGE, _COPY_RANGE + 1)
            k = np.repeat(np.arange(ng), v.size)
            self._copy_cost = tables.element_bits(np.tile(v, ng), k + g0).reshape(ng, v.size)
        return self._copy_cost

    def _fit_copy_scales(self, sym: np.ndarray, bins: np.ndarray, mask: np.ndarray | None,
                         fallback: np.ndarray | None) -> np.ndarray:
        """Per bin, the Gaussian table index that codes the copy residuals ``sym`` (where ``mask``) in fewest bits."""
        cost = self._copy_costs()
        vals = np.clip(sym, -_COPY_RANGE, _COPY_RANGE) + _COPY_RANGE
        kb = np.zeros(BINS, dtype=np.int64) if fallback is None else fallback.copy()
        for b in range(BINS):
            sel = bins == b
            if mask is not None:
                sel &= mask
            if sel.any():
                kb[b] = int(np.argmin(cost @ np.bincount(vals[sel], minlength=cost.shape[1])))
        return kb

    def table_fingerprint(self) -> bytes:
        return self.image.table_fingerprint()

    def fingerprint(self) -> bytes:
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(repr(sorted((k, v) for k, v in self.config().items() if k != "intra_period")).encode())
            for k, v in sorted(self.temporal.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            h.update(self.image.fingerprint())
            self._fingerprint = h.digest()
        return self._fingerprint

    # ---------------------------------------------------------------------------------------------------- coding
    def is_intra(self, t: int, intra_period: int) -> bool:
        return t == 0 or (intra_period > 0 and t % intra_period == 0)

    def new_segment(self, t: int, intra_period: int) -> bool:
        return self.is_intra(t, intra_period) or t % SEGMENT == 0

    def _hyper(self, z_hat: torch.Tensor):
        scales, means = self.image._hyper_synthesis(z_hat)
        return scales, (means if means is not None else torch.zeros_like(scales))

    # ------------------------------------------------------------------------------------- exact entropy parameters
    # Coding never runs the float networks that the decoder repeats: the hyperprior comes from the image codec's
    # exact integer h_s, the temporal prior from its integer compilation (codec.entropy.intnet), and the decoded
    # latents a P frame reads (y_hat, z_hat of the previous frame) are kept as fixed-point integers
    # (``2**A_BITS``). So block modes, copy scales, table indexes and means are bit-identical on every platform.
    def _exact_temporal(self) -> intnet.IntStack:
        if getattr(self, "_int_temporal", None) is None:
            t = self.temporal
            # inputs: y_prev - mu_h, mu_h, and ln(sigma_h) given as log2 (so ln 2 is folded into those weights)
            mults = [1.0] * (2 * self.M) + [math.log(2.0)] * self.M
            self._int_temporal = intnet.IntStack.from_modules([t.body, t.head], in_mults=mults)
        return self._int_temporal

    def _temporal_fixed(self, y_prev: torch.Tensor, means_h: torch.Tensor, scales_h: torch.Tensor):
        """The learned temporal prior in integers: (Gaussian table indexes (numpy int64), means int64 at
        ``2**A_BITS``) from the fixed-point previous latent and hyperprior. Same parametrisation as
        :meth:`TemporalPrior.forward` (gate, mean correction, log-scale correction) in fixed point."""
        A = intnet.A_BITS
        diff = y_prev - means_h
        lb = int(math.floor(0.11 * (1 << A)))
        log_s = intnet.ilog2(scales_h.clamp_min(lb), A) - (A << A)
        g, d, s = self._exact_temporal()(torch.cat([diff, means_h, log_s], 1)).to(torch.int64).chunk(3, 1)
        gate = intnet.sigmoid(g, A, 16)
        means = means_h + torch.div(gate * diff + (1 << 15), 1 << 16, rounding_mode="floor") + d
        s = s.clamp(-6 << A, 4 << A)
        log2_scale = intnet.ilog2(scales_h, intnet.LOG_BITS) - (A << intnet.LOG_BITS) + intnet.log2e_mul(s, A)
        idx = intnet.log_scale_indexes(log2_scale, self.image._exact_parts()["thresholds"])
        idx = torch.where(scales_h > 0, idx, torch.zeros_like(idx))
        return idx.cpu().numpy(), means

    def _hyper_fixed(self, z_int: torch.Tensor):
        """(scales, means, table indexes) of the hyperprior from the fixed-point hyper-latent (means are zero for a
        scale-only hyperprior)."""
        scales, means = self.image.hyper_fixed(z_int)
        if means is None:
            means = torch.zeros_like(scales)
        return scales, means, self.image.scale_indexes(scales)

    @staticmethod
    def _block_sums(bits: np.ndarray) -> np.ndarray:
        """(C, h, w) per-element bits -> (hb, wb) bits per BLOCK x BLOCK block (all channels)."""
        c, h, w = bits.shape
        hb, wb = -(-h // BLOCK), -(-w // BLOCK)
        pad = np.zeros((c, hb * BLOCK, wb * BLOCK))
        pad[:, :h, :w] = bits
        return pad.reshape(c, hb, BLOCK, wb, BLOCK).sum(axis=(0, 2, 4))

    @staticmethod
    def _expand(blocks: np.ndarray, h: int, w: int) -> np.ndarray:
        return np.repeat(np.repeat(blocks, BLOCK, 0), BLOCK, 1)[:h, :w]

    def _block_prior(self, modes: np.ndarray, kb: np.ndarray, idx_h: np.ndarray, scales_h, means_h, y_prev,
                     learned: tuple | None = None):
        """Per-element (Gaussian table index, mean) of a P frame from its block modes and copy scales ``kb``
        ((COPY_CLASSES, BINS)); the learned prior is evaluated only when a block uses it (``learned``: its
        (indexes, means) when the caller has them already). All integer: returns (indexes (1, M, h, w) int64 into the
        Gaussian tables, means int64 at ``2**A_BITS``)."""
        h, w = idx_h.shape[-2:]
        me = self._expand(modes, h, w)[None, None]
        idx = np.where(me == MODE_INTRA, idx_h, 0).astype(np.int64)
        dev = means_h.device
        means = torch.where(torch.from_numpy(me == MODE_INTRA).to(dev), means_h, y_prev)
        if (modes == MODE_LEARNED).any():
            idx_l, means_l = learned if learned is not None else self._temporal_fixed(y_prev, means_h, scales_h)
            idx = np.where(me == MODE_LEARNED, idx_l, idx)
            means = torch.where(torch.from_numpy(me == MODE_LEARNED).to(dev), means_l, means)
        ng = self.image.tables["gaussian"].num_tables
        for j in range(COPY_CLASSES):
            copy = np.broadcast_to(me == MODE_COPY + j, idx_h.shape)
            idx[copy] = kb[j, idx_h[copy] * BINS // ng]
        return idx, means

    def _copy_bins(self, modes: np.ndarray, idx_h: np.ndarray) -> list:
        """Per copy class, the scale bins (sorted) its elements fall in: only their scales are sent."""
        h, w = idx_h.shape[-2:]
        me = self._expand(modes, h, w)[None, None]
        ng = self.image.tables["gaussian"].num_tables
        return [np.unique(idx_h[np.broadcast_to(me == MODE_COPY + j, idx_h.shape)].astype(np.int64) * BINS // ng)
                for j in range(COPY_CLASSES)]

    def _choose_p_modes(self, y, scales_h, means_h, idx_h, y_prev):
        """The encoder's P-frame decision: copy-mode scales fitted to the frame (per copy class and bin of the
        hyperprior scale) and, per block, the prior that codes it in fewest bits; three rounds (each class's scales
        are refitted on the blocks that chose it, and the mode map's own cost is counted). Returns (modes (hb, wb),
        kb (COPY_CLASSES, BINS), bits of the frame's y under that choice, bits of the frame's y coded intra, the
        learned prior's (indexes, means))."""
        tables = self.joint_tables()
        g0 = self._table_layout()[0]
        shape = tuple(y.shape[1:])
        ng = self.image.tables["gaussian"].num_tables
        sym_i = _round_cpu(y, means_h)
        bits_i = tables.element_bits(sym_i, idx_h.astype(np.int64) + g0).reshape(shape)
        idx_l, means_l = self._temporal_fixed(y_prev, means_h, scales_h)
        sym_l = _round_cpu(y, means_l)
        bits_l = tables.element_bits(sym_l, idx_l.astype(np.int64) + g0).reshape(shape)
        sym_c = _round_cpu(y, y_prev)[0]
        bins = idx_h[0].astype(np.int64) * BINS // ng
        sums = [self._block_sums(bits_i), self._block_sums(bits_l)]
        # start: one set of copy scales over all elements; the blocks it codes at more bits per element than the
        # median seed the other classes (in order of cost)
        k0 = self._fit_copy_scales(sym_c, bins, None, None)
        c0 = self._block_sums(tables.element_bits(sym_c, k0[bins] + g0).reshape(shape))
        edges = np.quantile(c0, np.linspace(0, 1, COPY_CLASSES + 1)[1:-1])
        modes = MODE_COPY + np.searchsorted(edges, c0)
        kb = np.repeat(k0[None], COPY_CLASSES, 0)
        mode_bits = np.zeros(NMODES)
        for _ in range(3):
            me = self._expand(modes, *shape[1:])
            costs = []
            for j in range(COPY_CLASSES):
                kb[j] = self._fit_copy_scales(sym_c, bins, np.broadcast_to(me == MODE_COPY + j, shape), kb[j])
                costs.append(self._block_sums(tables.element_bits(sym_c, kb[j][bins] + g0).reshape(shape)))
            cost = np.stack(sums + costs)
            modes = (cost + mode_bits[:, None, None]).argmin(0)
            # the next round also counts each mode's own cost under the mode pmf this choice would signal
            pmf = np.asarray(MODE_PMFS[mode_pmf_index(modes)])
            mode_bits = -np.log2(pmf / pmf.sum())
        y_bits = float(np.take_along_axis(cost, modes[None], 0).sum())
        return modes.astype(np.int32), kb.astype(np.int32), y_bits, float(bits_i.sum()), (idx_l, means_l)

    def _z_copy(self, z: torch.Tensor, z_prev: torch.Tensor) -> tuple[int, np.ndarray, float]:
        """The hyper-latent's temporal option: ``z_t`` coded around the previous decoded ``z_hat_(t-1)`` with one
        Gaussian table for the frame (index ``k`` >= 1, signalled). Returns (k, symbols, bits)."""
        sym = _round_cpu(z, z_prev)
        cost = self._copy_costs()
        hist = np.bincount(np.clip(sym, -_COPY_RANGE, _COPY_RANGE).reshape(-1) + _COPY_RANGE,
                           minlength=cost.shape[1])
        k = 1 + int(np.argmin(cost[1:] @ hist))
        g0 = self._table_layout()[0]
        return k, sym.astype(np.int32), self.joint_tables().information_content(sym, k + g0)

    @torch.no_grad()
    def encode_frame(self, enc: Encoder, x: torch.Tensor, ref: tuple | None, hasher: SymbolsHasher):
        """Code one RGB frame (1, 3, H, W) into ``enc``. With a reference ``ref = (y_hat, z_hat)`` of the previous
        decoded frame (a P frame), the encoder codes the hyper-latent either with the factorized bottleneck or
        around ``z_hat_(t-1)`` (whichever is cheaper), chooses a prior per block (intra, learned temporal, copy
        classes) and the copy scales, and also evaluates the frame's plain intra coding, keeping whichever costs
        fewer bits under the frozen tables (a per-frame mode, one bit). Returns ((y_hat, z_hat), used the
        temporal prior)."""
        img = self.image
        tables = self.joint_tables()
        g0, t_scale, t_mode = self._table_layout()
        y = img.g_a(img.pad(x.to(self.device)))
        z = img._hyper_analysis(y)
        z_sym, z_idx = entropy_bottleneck_symbols(img.entropy_bottleneck, z)
        z_hat = img.z_fixed(z_sym)
        scales_h, means_h, idx_h = self._hyper_fixed(z_hat)
        temporal = False
        if ref is not None:
            y_prev, z_prev = ref
            z_bits = tables.information_content(z_sym, z_idx)
            zk, zc_sym, zc_bits = self._z_copy(z, z_prev)
            if zc_bits < z_bits:  # P path: hyper-latent around the previous one
                pz_sym, pz_idx = zc_sym, np.full(zc_sym.shape, g0 + zk)
                pz_hat = z_prev + (torch.from_numpy(zc_sym.astype(np.int64)).to(z_prev.device) << intnet.A_BITS)
                p_scales, p_means, p_idx_h = self._hyper_fixed(pz_hat)
                i_sym = _round_cpu(y, means_h)
                i_bits = tables.information_content(i_sym, idx_h.astype(np.int64) + g0)
            else:
                zk, pz_sym, pz_idx, pz_hat, zc_bits = 0, z_sym, z_idx, z_hat, z_bits
                p_scales, p_means, p_idx_h, i_bits = scales_h, means_h, idx_h, None
            modes, kb, p_bits, pi_bits, learned = self._choose_p_modes(y, p_scales, p_means, p_idx_h, y_prev)
            i_bits = pi_bits if i_bits is None else i_bits
            pk = np.array([mode_pmf_index(modes)], dtype=np.int32)
            kb_used = np.concatenate([kb[j, u] for j, u in enumerate(self._copy_bins(modes, p_idx_h))])
            side = (tables.information_content(kb_used, t_scale) + tables.information_content(pk, t_mode)
                    + tables.information_content(modes, t_mode + 1 + int(pk[0]))
                    + tables.information_content(np.array([zk]), t_scale))
            temporal = zc_bits + p_bits + side < z_bits + i_bits
        if temporal:
            # z mode (0: factorized, k >= 1: around z_hat_(t-1) with Gaussian table k), z, then the block side
            # information: mode-pmf index, block modes, the copy scales of the bins the copy classes use
            zk_arr = np.array([zk], dtype=np.int32)
            enc.encode(zk_arr, np.full(1, t_scale))
            enc.encode(pz_sym, pz_idx)
            enc.encode(pk, np.full(1, t_mode))
            enc.encode(modes, np.full(modes.shape, t_mode + 1 + int(pk[0])))
            enc.encode(kb_used, np.full(kb_used.shape, t_scale))
            for a in (zk_arr, pz_sym, pk, modes, kb_used):
                hasher.update(a)
            z_hat = pz_hat
            idx, means = self._block_prior(modes, kb, p_idx_h, p_scales, p_means, y_prev, learned)
        else:
            enc.encode(z_sym, z_idx)
            hasher.update(z_sym)
            idx, means = idx_h, means_h
        y_sym = _round_cpu(y, means).astype(np.int32)
        enc.encode(y_sym, idx + g0)
        hasher.update(y_sym)
        return (_fixed_latent(y_sym, means), z_hat), temporal

    @torch.no_grad()
    def decode_frame(self, dec: Decoder, h: int, w: int, ref: tuple | None, hasher: SymbolsHasher):
        """Decode one frame from ``dec`` (``ref``: the previous frame's ``(y_hat, z_hat)`` when the frame is a P
        frame): (RGB (1, 3, h, w), not clipped; its ``(y_hat, z_hat)``)."""
        img = self.image
        g0, t_scale, t_mode = self._table_layout()
        ng = img.tables["gaussian"].num_tables
        zh, zw = img._latent_shape(h, w, 64)
        zk = 0
        if ref is not None:
            y_prev, z_prev = ref
            zk_arr = dec.decode(np.full(1, t_scale))
            zk = int(zk_arr[0])
            if not 0 <= zk < ng or (zk and tuple(z_prev.shape) != (1, self.N, zh, zw)):
                raise BitstreamError("video payload is corrupt (P-frame hyper-latent mode out of range)")
            hasher.update(zk_arr)
        if zk:
            z_sym = dec.decode(np.full((1, self.N, zh, zw), g0 + zk))
            z_hat = z_prev + (torch.from_numpy(z_sym.astype(np.int64)).to(z_prev.device) << intnet.A_BITS)
        else:
            z_sym = dec.decode(entropy_bottleneck_indexes(img.entropy_bottleneck, (1, self.N, zh, zw)))
            z_hat = img.z_fixed(z_sym)
        hasher.update(z_sym)
        scales_h, means_h, idx_h = self._hyper_fixed(z_hat)
        if ref is not None:
            pk = dec.decode(np.full(1, t_mode))
            if not 0 <= int(pk[0]) < len(MODE_PMFS):
                raise BitstreamError("video payload is corrupt (P-frame mode table out of range)")
            yh, yw = idx_h.shape[-2:]
            modes = dec.decode(np.full((-(-yh // BLOCK), -(-yw // BLOCK)), t_mode + 1 + int(pk[0])))
            if modes.min() < 0 or modes.max() >= NMODES:
                raise BitstreamError("video payload is corrupt (P-frame block modes out of range)")
            used = self._copy_bins(modes, idx_h)
            kb_used = dec.decode(np.full(sum(u.size for u in used), t_scale))
            if kb_used.size and (kb_used.min() < 0 or kb_used.max() >= ng):
                raise BitstreamError("video payload is corrupt (P-frame copy scales out of range)")
            hasher.update(pk)
            hasher.update(modes)
            hasher.update(kb_used)
            kb = np.zeros((COPY_CLASSES, BINS), dtype=np.int64)
            pos = 0
            for j, u in enumerate(used):
                kb[j, u] = kb_used[pos: pos + u.size]
                pos += u.size
            idx, means = self._block_prior(modes, kb, idx_h, scales_h, means_h, y_prev)
        else:
            idx, means = idx_h, means_h
        y_sym = dec.decode(idx + g0)
        hasher.update(y_sym)
        y_hat = _fixed_latent(y_sym, means)
        return img.g_s(intnet.from_fixed(y_hat))[..., :h, :w].cpu(), (y_hat, z_hat)

    def encode_frames(self, frames, height: int, width: int, intra_period: int | None = None, progress=None):
        """Code an iterable of 4:2:0 frames ``(Y, U, V)`` one at a time. Returns ``(Payload, symbols checksum,
        frame count)``; memory holds one frame, one segment's symbols and the coded bytes."""
        ip = self.intra_period if intra_period is None else int(intra_period)
        if ip < 0:
            raise CodecError(f"intra period must be >= 0 (0 = only the first frame intra), got {ip}")
        tables = self.joint_tables()
        hasher = SymbolsHasher()
        out = bytearray()
        enc, prev, n = None, None, 0
        modes = bytearray()
        for y, u, v in frames:
            if y.shape != (height, width):
                raise CodecError(f"frame {n} is {y.shape[1]}x{y.shape[0]}, the clip {width}x{height}")
            if n >= MAX_FRAMES:
                raise CodecError(f"clips of more than {MAX_FRAMES} frames are not supported")
            if self.new_segment(n, ip):
                if enc is not None:
                    seg = enc.finish()
                    out += _write_varint(len(seg)) + seg
                enc = Encoder(tables)
            ref = None if self.is_intra(n, ip) else prev
            prev, temporal = self.encode_frame(enc, yuv420_to_rgb(y, u, v), ref, hasher)
            if n % 8 == 0:
                modes.append(0)
            modes[-1] |= int(temporal) << (n % 8)
            n += 1
            if progress is not None:
                progress.update(1)
        if enc is None:
            raise CodecError("the clip has no frames")
        seg = enc.finish()
        out += _write_varint(len(seg)) + seg
        payload = Payload(streams={"modes": bytes(modes), "segments": bytes(out)},
                          ints={"size": (height, width), "intra_period": (ip,), "pformat": (PFORMAT,)})
        return payload, hasher.digest(), n

    def decode_frames(self, payload: Payload, frames: int, hasher: SymbolsHasher):
        """Generator of decoded 4:2:0 frames ``(Y, U, V)``; ``hasher`` sees every decoded symbol (verify it after
        the last frame)."""
        try:
            h, w = (int(v) for v in payload.ints["size"])
            (ip,) = payload.ints["intra_period"]
            pformat = tuple(payload.ints.get("pformat", (1,)))
            data = payload.streams["segments"]
            modes = payload.streams["modes"]
        except (KeyError, ValueError, TypeError):
            raise BitstreamError("video payload lacks its size, intra period or segments") from None
        if pformat != (PFORMAT,):
            raise BitstreamError(f"video payload is in P-frame format {pformat[0] if pformat else '?'}, this version "
                                 f"reads format {PFORMAT} (block-adaptive P frames): re-encode the clip")
        if not (0 < h <= 1 << 14 and 0 < w <= 1 << 14) or ip < 0 or not 0 < frames <= MAX_FRAMES:
            raise BitstreamError(f"video geometry out of range ({w}x{h}, {frames} frames, intra period {ip})")
        if len(modes) != (frames + 7) // 8:
            raise BitstreamError(f"video payload has {len(modes)} mode bytes for {frames} frames (corrupt)")
        tables = self.joint_tables()
        pos, dec, prev = 0, None, None
        for t in range(frames):
            if self.new_segment(t, ip):
                if dec is not None:
                    dec.finish()
                n, pos = _read_varint(data, pos)
                if pos + n > len(data):
                    raise BitstreamError(f"video payload is truncated (segment at frame {t})")
                dec = Decoder(data[pos: pos + n], tables)
                pos += n
            temporal = (modes[t // 8] >> (t % 8)) & 1
            if temporal and self.is_intra(t, ip):
                raise BitstreamError(f"video payload is corrupt (frame {t} is an intra frame but marked P)")
            x_hat, prev = self.decode_frame(dec, h, w, prev if temporal else None, hasher)
            yield rgb_to_yuv420(x_hat)
        dec.finish()
        if pos != len(data):
            raise BitstreamError(f"video payload has {len(data) - pos} trailing bytes (corrupt, or frame count wrong)")

    # ---------------------------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        opt = torch.optim.Adam(self.temporal.parameters(), lr=self.hparams.lr)
        if self.hparams.lr_milestones:
            sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_milestones),
                                                       gamma=self.hparams.lr_gamma)
            return [opt], [{"scheduler": sch, "interval": "step"}]
        return opt

    def _bits(self, residual: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """Bits of the rounded residual (straight-through rounding: the inference quantiser) under N(0, scales)."""
        gc = self.image.gaussian_conditional
        v = residual + (torch.round(residual) - residual).detach()
        lik = gc.likelihood_lower_bound(gc._likelihood(v, scales))
        return -torch.log2(lik).sum()

    def group_rates(self, x: torch.Tensor) -> dict:
        """Rates (bits per pixel) of a batch of frame groups (B, T, 3, H, W): frame 0 intra, frames 1.. P-coded
        with the temporal prior, and the same frames 1.. coded intra (the saving's reference)."""
        if x.dim() != 5 or x.size(1) < 2:
            raise CodecError(f"expected frame groups (B, T>=2, 3, H, W), got {tuple(x.shape)}")
        img = self.image
        b, t = x.shape[:2]
        eb = img.entropy_bottleneck
        with torch.no_grad():
            y = img.g_a(x.flatten(0, 1))
            z = img._hyper_analysis(y)
            z_hat = eb.quantize(z, "dequantize", eb._get_medians().detach())
            z_bits = -torch.log2(eb.likelihood(z_hat)).unflatten(0, (b, t))[:, 1:].sum()
            scales_h, means_h = self._hyper(z_hat)
            y, scales_h, means_h = (a.unflatten(0, (b, t)) for a in (y, scales_h, means_h))
            y_prev = torch.round(y[:, 0] - means_h[:, 0]) + means_h[:, 0]
            intra_bits = sum(self._bits(y[:, i] - means_h[:, i], scales_h[:, i]) for i in range(1, t))
        p_bits = 0.0
        for i in range(1, t):
            scales, means = self.temporal(y_prev, means_h[:, i], scales_h[:, i])
            p_bits = p_bits + self._bits(y[:, i] - means, scales)
            y_prev = (torch.round(y[:, i] - means) + means).detach()
        pixels = b * (t - 1) * x.size(-1) * x.size(-2)
        return {"bpp_p": p_bits / pixels, "bpp_intra": intra_bits / pixels, "bpp_z": z_bits / pixels}

    def training_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        r = self.group_rates(x)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(r["bpp_p"])
        if self.hparams.clip_max_norm and self.hparams.clip_max_norm > 0:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.clip_max_norm, gradient_clip_algorithm="norm")
        opt.step()
        sch = self.lr_schedulers()
        if sch is not None:
            sch.step()
        now = time.monotonic()
        if self._t_last is not None:
            self._train_seconds += now - self._t_last
        self._t_last = now
        saving = 1 - (r["bpp_p"] + r["bpp_z"]) / (r["bpp_intra"] + r["bpp_z"])
        self.log_dict({"train/bpp_p": r["bpp_p"], "train/bpp_intra": r["bpp_intra"], "train/saving": saving},
                      prog_bar=True, on_step=True, on_epoch=False)
        return r["bpp_p"]

    def on_train_epoch_start(self) -> None:
        self._t_last = None

    def validation_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        with torch.no_grad():
            r = self.group_rates(x)
        total_p, total_i = r["bpp_p"] + r["bpp_z"], r["bpp_intra"] + r["bpp_z"]
        self.log_dict({"val/loss": r["bpp_p"], "val/bpp_p": total_p, "val/bpp_intra": total_i,
                       "val/saving": 1 - total_p / total_i}, on_epoch=True, sync_dist=True, batch_size=x.size(0))
        self._t_last = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        from codec.codecs.image.models import hardware_description

        checkpoint["codec_training"] = {
            "train_seconds": self._train_seconds, "hardware": hardware_description(self.device),
            "world_size": int(getattr(self.trainer, "world_size", 1)) if self._trainer is not None else 1,
            "torch": str(torch.__version__), "image_sha256": self.image_sha256, "image_model": self.image_name,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._train_seconds = float(checkpoint.get("codec_training", {}).get("train_seconds", 0.0))


VIDEO_CODECS = {"LatentVideoCodec": LatentVideoCodec}


def build_video_codec(config: dict) -> LatentVideoCodec:
    if not isinstance(config, dict) or config.get("class") not in VIDEO_CODECS:
        raise CheckpointError(f"unknown video codec config {config!r}")
    try:
        return LatentVideoCodec(image_model=config["image_model"], width=int(config["width"]),
                                layers=int(config["layers"]), dilations=config.get("dilations"),
                                intra_period=int(config.get("intra_period", 32)),
                                image_sha256=config.get("image_sha256"))
    except KeyError as e:
        raise CheckpointError(f"video codec config lacks {e}") from None
