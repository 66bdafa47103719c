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

Coding follows the codec contract with frames streamed through it: ``compress(frames, height, width)`` takes an
iterable of frames and returns one Payload; ``decompress(payload)`` is a generator of frames that verifies the
symbols checksum after the last one.

Training (``train/fit.py`` with :class:`codec.train.data.VideoClipsData`): the image codec is frozen (its weights
come from its shipped checkpoint, named in the config and checked by sha256); only the temporal prior learns, on
the rate of ``y`` for groups of consecutive frames (straight-through rounding, the inference quantiser). This is
the cheap first stage the design allows; a joint fine-tune of the transforms is not done.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from codec.bitstream import DIVERGED, Payload, SymbolsHasher
from codec.codecs.base import CodecModule, register_codec
from codec.entropy import CdfTables, Decoder, Encoder, intnet
from codec.entropy.coder import read_varint, write_varint
from codec.entropy.adapters import entropy_bottleneck_indexes, entropy_bottleneck_symbols
from codec.errors import BitstreamError, CheckpointError, CodecError, DivergenceError, EntropyError
from codec.codecs.video.color import rgb_to_yuv420, yuv420_to_rgb  # noqa: F401  (re-exported)
from codec.codecs.video.modes import (  # noqa: F401  (the format's constants, re-exported)
    BINS, BLOCK, COPY_CLASSES, MAX_FRAMES, MODE_COPY, MODE_PMFS, NMODES, PFORMAT, SEGMENT,
    ModeSearch, fixed_latent, mode_pmf_index, round_cpu,
)
from codec.codecs.video.prior import TemporalPrior
from codec.codecs.video.training import VideoTraining


def load_image_codec(spec: str, expected_sha256: str | None = None):
    """A fresh copy of the hyperprior image model a video model is built on: ``(model, name, sha256)``; ``spec``: a
    shipped name (``msh-q4``) or a ``.pt`` file, pinned by the sha256 recorded at training."""
    from codec.checkpoints import load_pinned

    model, name, sha = load_pinned(spec, expected_sha256, "image", "this video model was trained on image model")
    if not hasattr(model, "gaussian_conditional") or not hasattr(model, "h_s"):
        raise CheckpointError(f"the video codec needs a hyperprior image model (ScaleHyperprior or "
                              f"MeanScaleHyperprior), not {type(model).__name__}")
    return model, name, sha


@register_codec
class LatentVideoCodec(ModeSearch, VideoTraining, CodecModule):
    """P-frame video codec: a frozen shipped hyperprior image codec + a learned temporal prior (module docstring)."""

    codec_name = "latent-video"
    modality = "video"
    manual_optimization = True

    def __init__(self, image_model: str = "msh-q4", width: int = 128, layers: int = 3, dilations: list | None = None,
                 intra_period: int = 32,
                 lr: float = 1e-4, clip_max_norm: float = 1.0, lr_milestones: list | None = None,
                 lr_gamma: float = 0.1, image_sha256: str | None = None, init_from: str | None = None):
        super().__init__()
        if int(intra_period) < 0:
            raise CodecError(f"intra_period must be >= 0 (0 = only the first frame), got {intra_period}")
        self.save_hyperparameters()
        image, name, sha = load_image_codec(image_model, image_sha256)
        for p in image.parameters():
            p.requires_grad_(False)
        self.image = image.eval()
        self.image_name, self.image_sha256 = name, sha
        self.M, self.N = int(image.M), int(image.N)
        self.temporal = TemporalPrior(self.M, int(width), int(layers), dilations)
        self.intra_period = int(intra_period)
        self._joint: CdfTables | None = None
        if init_from:
            self.init_from(init_from)

    # ---------------------------------------------------------------------------------------------------- config
    def config(self) -> dict:
        hp = self.hparams
        return {"class": type(self).__name__, "image_model": self.image_name, "image_sha256": self.image_sha256,
                "width": int(hp.width), "layers": int(hp.layers), "intra_period": self.intra_period,
                **({"dilations": [int(d) for d in hp.dilations]} if hp.dilations else {})}

    @classmethod
    def from_config(cls, config: dict) -> "LatentVideoCodec":
        return cls(image_model=config["image_model"], width=int(config["width"]), layers=int(config["layers"]),
                   dilations=config.get("dilations"), intra_period=int(config.get("intra_period", 32)),
                   image_sha256=config.get("image_sha256"))

    @classmethod
    def from_training(cls, args: dict, checkpoint: dict) -> "LatentVideoCodec":
        """The image model is pinned by the sha256 the training run recorded."""
        info = checkpoint.get("codec_training", {})
        return cls(**{k: v for k, v in args.items() if k not in ("init_from", "image_sha256")},
                   image_sha256=info.get("image_sha256"))

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

    def table_fingerprint(self) -> bytes:
        return self.image.table_fingerprint()

    def _fingerprint_config(self) -> dict:
        return {k: v for k, v in self.config().items() if k != "intra_period"}  # a coding setting, not the model

    def _fingerprint_state(self) -> dict:
        return self.temporal.state_dict()

    def _fingerprint_tail(self) -> bytes:
        return self.image.fingerprint()

    # ---------------------------------------------------------------------------------------------------- coding
    def is_intra(self, t: int, intra_period: int) -> bool:
        return t == 0 or (intra_period > 0 and t % intra_period == 0)

    def new_segment(self, t: int, intra_period: int) -> bool:
        return self.is_intra(t, intra_period) or t % SEGMENT == 0

    def _hyper(self, z_hat: torch.Tensor):
        scales, means = self.image.hyper_decode(z_hat)
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
        z = img.hyper_encode(y)
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
                i_sym = round_cpu(y, means_h)
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
        y_sym = round_cpu(y, means).astype(np.int32)
        enc.encode(y_sym, idx + g0)
        hasher.update(y_sym)
        return (fixed_latent(y_sym, means), z_hat), temporal

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
        y_hat = fixed_latent(y_sym, means)
        return img.g_s(intnet.from_fixed(y_hat))[..., :h, :w].cpu(), (y_hat, z_hat)

    @torch.no_grad()
    def compress(self, frames, height: int, width: int, intra_period: int | None = None, progress=None) -> Payload:
        """Code an iterable of 4:2:0 frames ``(Y, U, V)`` one at a time; memory holds one frame, one segment's
        symbols and the coded bytes. The payload's ``meta`` holds the frame count, ``checksum`` the symbols'."""
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
                    out += write_varint(len(seg)) + seg
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
        out += write_varint(len(seg)) + seg
        return Payload(streams={"modes": bytes(modes), "segments": bytes(out)},
                       ints={"size": (height, width), "intra_period": (ip,), "pformat": (PFORMAT,)},
                       checksum=hasher.digest(), meta={"frames": n})

    def decompress(self, payload: Payload):
        """Generator of decoded 4:2:0 frames ``(Y, U, V)`` (the frame count is ``payload.meta["frames"]``, from the
        container header). After the last frame the decoded symbols are checked against ``payload.checksum``: a
        mismatch raises DivergenceError (writers discard what they wrote, as :class:`codec.media.VideoWriter`
        does)."""
        try:
            frames = int(payload.meta["frames"])
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("video payload has no frame count (the container header gives it)") from None
        hasher = SymbolsHasher()
        with torch.no_grad():
            yield from self._decode_frames(payload, frames, hasher)
        if not payload.matches(hasher.digest()):
            raise DivergenceError(DIVERGED.format(detail="symbols checksum mismatch after the last frame"))

    def frame_symbols(self, h: int, w: int) -> int:
        """The fewest symbols one frame of ``h`` x ``w`` takes (its hyper-latent and latent; P frames add a few)."""
        zh, zw = self.image._latent_shape(h, w, 64)
        return (self.N + 16 * self.image.M) * zh * zw

    def _check_segments(self, data: bytes, frames: int, ip: int, h: int, w: int, tables) -> None:
        """Before decoding anything: the segments stream must hold one coded segment per intra period, each
        announcing at least the symbols of its frames (so a header that claims more or larger frames than the
        streams hold is refused without decoding)."""
        from codec.entropy.coder import max_symbols, stream_symbols

        starts = [t for t in range(frames) if self.new_segment(t, ip)]
        need = self.frame_symbols(h, w)
        pos = 0
        for i, t0 in enumerate(starts):
            n_frames = (starts[i + 1] if i + 1 < len(starts) else frames) - t0
            try:
                n, pos = read_varint(data, pos)
                have = stream_symbols(data[pos: pos + n])
            except EntropyError:
                raise BitstreamError(f"video payload is truncated or corrupt (segment {i} of {len(starts)})") \
                    from None
            if pos + n > len(data):
                raise BitstreamError(f"video payload is truncated (segment {i} of {len(starts)})")
            cap = have if have is not None else max_symbols(tables, max(0, n - 5) // 4 + 2)
            if cap < n_frames * need:
                raise BitstreamError(f"the header says segment {i} has {n_frames} frame(s) of {w}x{h}, which take at "
                                     f"least {n_frames * need} symbols; the segment holds {cap} (corrupt or forged "
                                     "file)")
            pos += n
        if pos != len(data):
            raise BitstreamError(f"video payload has {len(data) - pos} bytes beyond its {len(starts)} segment(s) "
                                 "(corrupt, or frame count wrong)")

    def _decode_frames(self, payload: Payload, frames: int, hasher: SymbolsHasher):
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
        self._check_segments(data, frames, int(ip), h, w, tables)
        pos, dec, prev = 0, None, None
        for t in range(frames):
            if self.new_segment(t, ip):
                if dec is not None:
                    dec.finish()
                try:
                    n, pos = read_varint(data, pos)
                except EntropyError:
                    raise BitstreamError("video payload is truncated or corrupt (segment length)") from None
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