"""A neural context model for the finest levels of 2D integer latents (WaLLoC's image latents), exact on every
platform.

:class:`codec.entropy.context.ContextModel` codes a latent (C, H, W) as a polyphase pyramid: the coarsest level,
then every finer level phase by phase ((even row, odd col), (odd row, even col), (odd, odd)) given what is known.
Its prediction is a rounded mean of two or four neighbours and its tables are chosen by a hand-made activity
context. :class:`NeuralContext` replaces both for the finest ``levels`` pyramid levels (where ~93 % of the bits
are): per (level, phase) a small CNN sees the known polyphase components of the level (the even positions and
the phases already coded, all channels), and a per-channel head that also sees the channels already coded at the
same positions (channel-by-channel, autoregressive over channels) predicts a mean ``mu`` and a log scale for each
value. The value is coded as the residual ``sign * (value - round(mu))`` (``sign`` folds the fractional part of
``mu`` to be non-negative) with a table chosen by (log-scale bin, fraction bin), whose counts are learned on
training latents.

**Exactness.** A float network can round differently on another CPU, and one different table index desynchronises
the rANS decoder. So the shipped network is an integer network: weights are integers (``2**Q_BITS`` per unit),
activations are integers (``2**A_BITS`` per unit), each layer's accumulator is requantised with a floor shift, and
everything is evaluated in float64 holding integers. All values stay below ``2**53`` (weights and activations are
bounded, see :data:`LIMIT`), so every sum is exact whatever the summation order, BLAS or CPU. The convolutions and
the requantisation are :mod:`codec.entropy.intnet`'s (:func:`~codec.entropy.intnet.exact_conv2d`,
:func:`~codec.entropy.intnet.requant`), the exact integer evaluation every family shares. Training happens in
float (:func:`codec.entropy.neural_train.train_nets`, PyTorch), then the weights are rounded (:meth:`IntNet.from_float`); the tables are then
counted with the integer network itself, so what is counted is what is coded.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from codec.entropy.intnet import exact_conv2d, requant
from codec.errors import EntropyError

A_BITS = 8          # activations: integer = value * 2**A_BITS
Q_BITS = 10         # weights: integer = value * 2**Q_BITS
IN_SCALE = 32       # network inputs are latents / IN_SCALE (integer input = latent * 2**A_BITS / IN_SCALE)
LIMIT = 1 << 20     # |activation| and |weight| bound: 2**20 * 2**20 * fan-in (< 2**12) stays below 2**53
MAX_FANIN = 1 << 12
LS_MIN, LS_PER_UNIT, NBINS = -3.0, 4, 40  # ln(scale) bins of 1/4 from -3 (scale 0.05 .. 1100)
NFRAC = 3                                  # |mu - round(mu)| bins of 1/6
NUM_TABLES = NBINS * NFRAC
MIN_SIDE = 12       # latents with a shorter side (images under 96 px for WaLLoC RGB 16x) use the context model only:
                    # measured on Kodak crops and CIFAR-10, the networks lose there (border effects dominate)
PARAMS = ("w0", "b0", "w1", "b1", "w2", "b2", "hf", "hfb", "hv", "ow", "ob", "sf", "sv")


def _phase_inputs(rec: np.ndarray, ph: int) -> np.ndarray:
    """The known polyphase components of a level ``rec`` (N, C, h, w) for phase ``ph`` on the half-size grid
    (ceil(h/2), ceil(w/2)), odd sizes padded by edge replication: (N, (1 + ph) * C, gh, gw)."""
    gh, gw = (rec.shape[-2] + 1) // 2, (rec.shape[-1] + 1) // 2
    comps = [rec[..., 0::2, 0::2], rec[..., 0::2, 1::2], rec[..., 1::2, 0::2]][:1 + ph]
    out = []
    for c in comps:
        ph_, pw_ = gh - c.shape[-2], gw - c.shape[-1]
        out.append(np.pad(c, ((0, 0), (0, 0), (0, ph_), (0, pw_)), mode="edge") if ph_ or pw_ else c)
    return np.concatenate(out, axis=1)


def _target_slice(ph: int):
    return [(Ellipsis, slice(0, None, 2), slice(1, None, 2)), (Ellipsis, slice(1, None, 2), slice(0, None, 2)),
            (Ellipsis, slice(1, None, 2), slice(1, None, 2))][ph]


def _conv3(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """3x3 convolution, zero padding 1, of integer-valued float64 ``x`` (N, Ci, H, W) by ``w`` (Co, Ci, 3, 3),
    exact for integer values (see the module docstring). Returns (N, H, W, Co)."""
    out = exact_conv2d(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)), torch.from_numpy(w), padding=1)
    return out.permute(0, 2, 3, 1).numpy()


def _requant(acc: np.ndarray) -> np.ndarray:
    """Accumulator (scale 2**(A+Q)) -> activation (scale 2**A), ReLU, bounded: exact floor shift."""
    return np.clip(requant(torch.from_numpy(np.asarray(acc, dtype=np.float64)), Q_BITS).numpy(), 0, LIMIT)


class IntNet:
    """One (level, phase) network in integers: trunk of three 3x3 convs (ReLU) on the known components, then per
    channel c a hidden layer of ``head`` units from the trunk features and the channels < c at the same position,
    and an output (mu / IN_SCALE, ln scale) linear in the hidden units plus a linear skip from the trunk features
    and the channels < c (``sf``, ``sv``: the skip carries the linear cross-channel prediction, so the hidden
    units are left for the non-linear part)."""

    def __init__(self, params: dict):
        try:
            p = {k: np.asarray(params[k]) for k in PARAMS}
        except KeyError as e:
            raise EntropyError(f"neural context network lacks parameter {e}") from None
        for k, v in p.items():
            if v.dtype.kind not in "iu":
                raise EntropyError(f"neural context parameter {k} must be integer, got {v.dtype}")
            if v.size and np.abs(v.astype(np.int64)).max() > LIMIT:
                raise EntropyError(f"neural context parameter {k} exceeds the bound {LIMIT}")
        width, cin = p["w0"].shape[:2]
        C = p["hv"].shape[1]
        head = p["hf"].shape[0] // max(C, 1)
        shapes = {"w0": (width, cin, 3, 3), "b0": (width,), "w1": (width, width, 3, 3), "b1": (width,),
                  "w2": (width, width, 3, 3), "b2": (width,), "hf": (C * head, width), "hfb": (C * head,),
                  "hv": (C * head, C), "ow": (C, 2, head), "ob": (C, 2), "sf": (C, 2, width), "sv": (C, 2, C)}
        for k, s in shapes.items():
            if tuple(p[k].shape) != s:
                raise EntropyError(f"neural context parameter {k} has shape {tuple(p[k].shape)}, expected {s}")
        if C < 1 or head < 1 or cin % C or max(cin, width) * 9 > MAX_FANIN or head + width + C > MAX_FANIN:
            raise EntropyError(f"bad neural context network sizes (in {cin}, width {width}, C {C}, head {head})")
        later = np.arange(C)[None, :] >= np.arange(C)[:, None]  # (channel c, input d): d >= c is not decoded yet
        if np.any(p["hv"].reshape(C, head, C) * later[:, None, :]) or np.any(p["sv"] * later[:, None, :]):
            raise EntropyError("neural context head weights must only see earlier channels")
        self.p = {k: v.astype(np.float64) for k, v in p.items()}
        self.raw = {k: v.astype(np.int32) for k, v in p.items()}
        self.C, self.head, self.width, self.cin = C, head, width, cin

    @classmethod
    def from_float(cls, params: dict) -> "IntNet":
        """Round float parameters (numpy arrays, the names of :data:`PARAMS`) to integers."""
        out = {}
        for k in PARAMS:
            v = np.asarray(params[k], dtype=np.float64)
            scale = 1 << (Q_BITS + A_BITS) if k in ("b0", "b1", "b2", "hfb", "ob") else 1 << Q_BITS
            out[k] = np.clip(np.round(v * scale), -LIMIT, LIMIT).astype(np.int64)
        return cls(out)

    def trunk(self, inputs: np.ndarray) -> np.ndarray:
        """Features (N, gh, gw, width) from integer inputs (N, cin, gh, gw) (latent values)."""
        x = inputs.astype(np.float64) * ((1 << A_BITS) // IN_SCALE)
        p = self.p
        x = _requant(_conv3(x, p["w0"]) + p["b0"])
        x = _requant(_conv3(x.transpose(0, 3, 1, 2), p["w1"]) + p["b1"])
        return _requant(_conv3(x.transpose(0, 3, 1, 2), p["w2"]) + p["b2"])

    def head_out(self, feats: np.ndarray, values: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Accumulators (mu, ln scale), each (N, gh, gw) at scale 2**(A+Q), of channel ``c`` from the features
        and ``values`` (N, >= c, gh, gw) holding the channels < c (latent values) at the same positions."""
        p, h = self.p, self.head
        rows = slice(c * h, (c + 1) * h)
        acc = feats @ p["hf"][rows].T + p["hfb"][rows]
        out = feats @ p["sf"][c].T + p["ob"][c]
        if c:
            v = values[:, :c].astype(np.float64).transpose(0, 2, 3, 1) * ((1 << A_BITS) // IN_SCALE)
            acc = acc + v @ p["hv"][rows, :c].T
            out = out + v @ p["sv"][c, :, :c].T
        out = out + _requant(acc) @ p["ow"][c].T
        return out[..., 0], out[..., 1]


def _code_params(acc_mu: np.ndarray, acc_ls: np.ndarray):
    """(prediction, sign, table) from the integer accumulators: all exact integer arithmetic in float64."""
    unit = float(1 << (A_BITS + Q_BITS))
    mu_unit = unit / IN_SCALE                      # accumulator units per latent step
    pred = np.floor((acc_mu + mu_unit / 2) / mu_unit)
    frac = acc_mu - pred * mu_unit                 # in [-mu_unit/2, mu_unit/2)
    sign = np.where(frac < 0, -1, 1)
    fbin = np.minimum(np.floor(np.abs(frac) * (2 * NFRAC) / mu_unit), NFRAC - 1)
    sbin = np.clip(np.floor((acc_ls - LS_MIN * unit) * LS_PER_UNIT / unit), 0, NBINS - 1)
    pred = np.clip(pred, -(1 << 30), 1 << 30)
    return pred.astype(np.int64), sign.astype(np.int64), (sbin * NFRAC + fbin).astype(np.int64)


def table_scales() -> np.ndarray:
    """The Laplace scale at the centre of each table's log-scale bin (the smoothing prior of the counts)."""
    ls = LS_MIN + (np.arange(NBINS) + 0.5) / LS_PER_UNIT
    return np.repeat(np.exp(ls), NFRAC)


class NeuralContext:
    """Codes the finest ``len(nets)`` pyramid levels of a 2D latent with integer networks ``nets[level][phase]``;
    the coarser levels stay with the :class:`ContextModel` ``base``. Tables: the base's, then
    :data:`NUM_TABLES` for the networks (offset ``base.num_tables``)."""

    def __init__(self, base, nets: list[list[IntNet]], min_side: int = MIN_SIDE):
        if base.ndim != 2:
            raise EntropyError("the neural context model is for 2D latents")
        if not nets or any(len(n) != base.phases for n in nets):
            raise EntropyError(f"need {base.phases} networks per level")
        for lev, row in enumerate(nets):
            for ph, net in enumerate(row):
                if net.C != base.C or net.cin != (1 + ph) * base.C:
                    raise EntropyError(f"neural context network ({lev}, {ph}) does not fit {base.C}-channel latents")
        self.base, self.nets, self.levels = base, nets, len(nets)
        self.min_side = int(min_side)
        self.offset = base.num_tables
        self.radius = base.radius

    @property
    def num_tables(self) -> int:
        return self.base.num_tables + NUM_TABLES

    def _stop(self, shape) -> int:
        """How many of the finest levels the networks code: all they cover, or none for a latent whose shorter side
        is under ``min_side`` (the encoder and the decoder both know the shape)."""
        L, _ = self.base._steps(shape)
        return min(self.levels, L) if min(shape[2:]) >= self.min_side else 0

    def _walk(self, sym: np.ndarray):
        """Yield (lev, ph, c, coded residuals, table ids) for the network levels of a fully known ``sym``."""
        pyr = [sym]
        for _ in range(self._stop(sym.shape)):
            pyr.append(pyr[-1][..., 0::2, 0::2])
        for lev in range(self._stop(sym.shape) - 1, -1, -1):
            rec = pyr[lev]
            for ph in range(3):
                net = self.nets[lev][ph]
                feats = net.trunk(_phase_inputs(rec, ph))
                tgt = rec[_target_slice(ph)]
                gh, gw = tgt.shape[-2:]
                full = np.zeros(tgt.shape[:2] + feats.shape[1:3], dtype=np.int64)
                full[..., :gh, :gw] = tgt
                for c in range(self.base.C):
                    mu, ls = net.head_out(feats, full, c)
                    pred, sign, tab = _code_params(mu[:, :gh, :gw], ls[:, :gh, :gw])
                    yield lev, ph, c, sign * (tgt[:, c] - pred), tab

    def count(self, sym) -> np.ndarray:
        """Counts (NUM_TABLES, alphabet) of the coded residuals of ``sym`` (N, C, H, W) in the network tables."""
        sym = self.base._check(sym)
        A = 2 * self.radius + 1
        counts = np.zeros(NUM_TABLES * A, dtype=np.int64)
        for *_, r, t in self._walk(sym):
            r, t = r.reshape(-1) + self.radius, t.reshape(-1)
            ok = (r >= 0) & (r < A)
            counts += np.bincount(t[ok] * A + r[ok], minlength=counts.size)
        return counts.reshape(NUM_TABLES, A)

    def tables(self, base_counts, counts, smoothing: float = 1.0, precision: int = 16):
        """The base's tables and the network tables (counts plus ``smoothing`` x alphabet pseudo-counts spread as
        a discretised Laplace at the bin's scale), one :class:`CdfTables`."""
        from codec.entropy.tables import CdfTables

        counts = np.asarray(counts, dtype=np.float64)
        A = 2 * self.radius + 1
        if counts.shape != (NUM_TABLES, A):
            raise EntropyError(f"network counts must have shape {(NUM_TABLES, A)}, got {counts.shape}")
        v = np.arange(-self.radius, self.radius + 1, dtype=np.float64)
        pmfs = []
        for k, b in enumerate(table_scales()):
            f = (k % NFRAC + 0.5) / (2 * NFRAC)  # the fold makes the mean round(mu) + f, f >= 0
            cdf = lambda t: np.where(t < 0, 0.5 * np.exp(np.minimum(t, 0) / b), 1 - 0.5 * np.exp(-np.maximum(t, 0) / b))
            lap = np.maximum(cdf(v + 0.5 - f) - cdf(v - 0.5 - f), 1e-12)
            prior = lap / lap.sum()
            p = counts[k] + float(smoothing) * A * prior
            pmfs.append(p / p.sum())
        nn = CdfTables.from_pmfs(pmfs, offsets=-self.radius, precision=precision, tail_mass=1e-6)
        return CdfTables.concatenate([self.base.tables(base_counts, precision=precision, smoothing=smoothing), nn])

    def encode(self, sym, tables) -> bytes:
        from codec.entropy.coder import Encoder

        sym = self.base._check(sym)
        if sym.shape[0] != 1:
            raise EntropyError("the neural context model codes one latent at a time")
        enc = Encoder(tables)
        self.base.encode_into(enc, sym, stop=self._stop(sym.shape))
        for *_, r, t in self._walk(sym):
            enc.encode(r.reshape(-1), (t + self.offset).reshape(-1))
        return enc.finish()

    def decode(self, data: bytes, shape, tables) -> np.ndarray:
        from codec.entropy.coder import Decoder

        shape = self.base._check_shape(shape)
        if shape[0] != 1:
            raise EntropyError("the neural context model codes one latent at a time")
        dec = Decoder(data, tables)
        dec.expect(math.prod(shape))
        stop = self._stop(shape)
        cur = self.base.decode_from(dec, shape, stop=stop)
        _, sizes = self.base._steps(shape)
        for lev in range(stop - 1, -1, -1):
            rec = np.zeros(shape[:2] + tuple(sizes[lev]), dtype=np.int64)
            rec[..., 0::2, 0::2] = cur
            for ph in range(3):
                net = self.nets[lev][ph]
                feats = net.trunk(_phase_inputs(rec, ph))
                sl = _target_slice(ph)
                gh, gw = rec[sl].shape[-2:]
                full = np.zeros(shape[:2] + feats.shape[1:3], dtype=np.int64)
                for c in range(self.base.C):
                    mu, ls = net.head_out(feats, full, c)
                    pred, sign, tab = _code_params(mu[:, :gh, :gw], ls[:, :gh, :gw])
                    r = dec.decode((tab + self.offset).reshape(-1)).reshape(tab.shape).astype(np.int64)
                    full[:, c, :gh, :gw] = pred + sign * r
                rec[sl] = full[..., :gh, :gw]
            cur = rec
        dec.finish()
        return cur.astype(np.int32)


def nets_to_arrays(nets: list[list[IntNet]]) -> dict[str, np.ndarray]:
    """Flat {"l{lev}p{ph}_{param}": int32 array} for checkpoint buffers."""
    return {f"l{lev}p{ph}_{k}": net.raw[k] for lev, row in enumerate(nets) for ph, net in enumerate(row)
            for k in PARAMS}


def nets_from_arrays(arrays: dict, levels: int) -> list[list[IntNet]]:
    try:
        return [[IntNet({k: arrays[f"l{lev}p{ph}_{k}"] for k in PARAMS}) for ph in range(3)]
                for lev in range(levels)]
    except KeyError as e:
        raise EntropyError(f"neural context parameters incomplete: missing {e}") from None
