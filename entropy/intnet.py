"""Exact integer networks and fixed-point functions: everything the entropy decoder depends on, bit-identical on
every CPU, thread count, oneDNN on or off, and CUDA.

A float network can round differently on another machine (another convolution kernel, summation order, FMA, GPU),
and one ulp that moves a predicted scale across a table boundary desynchronises the rANS decoder. So the parts of a
codec that choose a probability table, the mean a symbol is coded around, or a prediction from earlier decoded data
are evaluated here, as integers:

- :class:`IntStack` is an integer network compiled from a trained float stack of CompressAI layers (``Conv2d``,
  grouped or depthwise too, ``ConvTranspose2d`` with any stride, padding, output padding and dilation; ``ReLU``;
  ``LeakyReLU``). Weights are
  integers ``round(w * 2**q_bits)``, activations integers ``round(a * 2**a_bits)``; each layer's accumulator (scale
  ``2**(a_bits + q_bits)``) is requantised to ``2**a_bits`` by a rounding shift. Shipped float16 weights convert
  without loss for every weight of magnitude at least ``2**(10 - q_bits)``.
- Evaluation is in float64 holding integers. At compile time each layer gets an activation bound such that the sum
  of the absolute values of all products of an output (plus its bias) stays below ``2**53``; inputs are clamped to
  it. Then every product and every partial sum is an integer below ``2**53`` and exact, so any summation order,
  blocking, BLAS, thread count or GPU gives the same bits. Convolutions run through PyTorch's direct im2col/GEMM
  kernels (oneDNN and cuDNN are switched off around them, so no FFT or Winograd algorithm, which would not be exact,
  can be picked); integer-only steps (shifts, floors, comparisons) are exact by construction.
- :func:`ilog2`, :func:`exp2`, :func:`sigmoid` are fixed-point functions in int64 arithmetic only (constants from
  ``math.isqrt``), for priors whose parametrisation has a logarithm, an exponential or a gate.
- :func:`scale_thresholds` / :func:`scale_indexes` pick a Gaussian table from an integer scale exactly as
  CompressAI's ``GaussianConditional.build_indexes`` picks it from a float scale.

:mod:`codec.entropy.neural` (WaLLoC's context networks) evaluates its convolutions with :func:`exact_conv2d` and
:func:`requant` from here; the image and video codecs compile their hyper-synthesis and temporal prior into
:class:`IntStack`.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from codec.errors import CodecError

#: activation precision of the hyper-synthesis / temporal-prior networks: integer = value * 2**A_BITS
A_BITS = 12
#: weight precision: integer = weight * 2**Q_BITS (float16 weights of magnitude >= 2**-6 are exact at 16)
Q_BITS = 16
#: fraction bits of the fixed-point logarithms (log2 values are integers = log2(x) * 2**LOG_BITS)
LOG_BITS = 16
EXACT = 1 << 53            # every integer held in float64 stays below this
MAX_ACT = 1 << 40          # activation bounds are capped here
#: a version tag of the integer arithmetic; goes into checkpoint fingerprints, so a change is a new model identity
VERSION = f"intnet-1/a{A_BITS}/q{Q_BITS}/l{LOG_BITS}"

_P = 30                                    # mantissa bits of the fixed-point log / exp
_LOG2E_20 = 1512775                        # round(log2(e) * 2**20)


_TRACES: list = []


class Trace:
    """While active (``with Trace() as t:``), a digest of every exact entropy parameter computed: each
    :class:`IntStack` output and each table-index array, in call order. Two decodes of one file computed identical
    entropy parameters exactly when their digests agree (the portability tests compare them across backends)."""

    def __enter__(self) -> "Trace":
        import hashlib

        self._h = hashlib.blake2b(digest_size=16)
        self.count = 0
        _TRACES.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _TRACES.remove(self)

    def update(self, t: torch.Tensor) -> None:
        a = t.detach().to(torch.int64).cpu().contiguous()
        self._h.update(str(tuple(a.shape)).encode() + a.numpy().tobytes())
        self.count += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _record(t: torch.Tensor) -> torch.Tensor:
    for tr in _TRACES:
        tr.update(t)
    return t


@contextlib.contextmanager
def _direct_kernels():
    """Switch off the backends that may pick non-exact convolution algorithms (oneDNN has no float64 kernels and
    would not be used anyway; cuDNN could pick FFT). PyTorch's native kernels are im2col + GEMM."""
    mk, cu = torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled
    torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled = False, False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled = mk, cu


def exact_conv2d(x: torch.Tensor, w: torch.Tensor, stride=1, padding=0, dilation=1, transposed: bool = False,
                 output_padding=0, groups: int = 1) -> torch.Tensor:
    """Convolution of integer-valued float64 ``x`` by integer-valued float64 ``w`` (no bias), exact when the caller
    keeps every output's sum of absolute products below ``2**53`` (:class:`IntStack` does)."""
    with _direct_kernels():
        if transposed:
            return F.conv_transpose2d(x, w, None, stride, padding, output_padding, groups, dilation)
        return F.conv2d(x, w, None, stride, padding, dilation, groups)


def requant(acc: torch.Tensor, q_bits: int) -> torch.Tensor:
    """Accumulator at scale ``2**(a + q_bits)`` -> integer at scale ``2**a``: round half up by a floor shift (exact in
    float64: adding an integer, dividing by a power of two and flooring never round)."""
    return torch.floor((acc + float(1 << (q_bits - 1))) / float(1 << q_bits))


class IntStack:
    """An integer network compiled from a float stack of ``Conv2d`` / ``ConvTranspose2d`` / ``ReLU`` /
    ``LeakyReLU`` modules (see the module docstring). Call it on integer inputs at scale ``2**a_bits`` (any integer
    dtype or integer-valued float64, on any device); it returns float64 integers at scale ``2**a_bits``."""

    def __init__(self, layers: list[dict], a_bits: int = A_BITS, q_bits: int = Q_BITS):
        self.layers, self.a_bits, self.q_bits = layers, int(a_bits), int(q_bits)
        self._on: dict = {}

    @classmethod
    def from_modules(cls, modules, in_mults=None, a_bits: int = A_BITS, q_bits: int = Q_BITS) -> "IntStack":
        """Compile ``modules`` (an ``nn.Sequential`` or an iterable of modules, flattened). ``in_mults``: optional
        per-input-channel float multipliers folded into the first layer's weights before rounding (e.g. ``ln 2``
        for an input given as a base-2 logarithm)."""
        from torch import nn

        flat: list = []

        def walk(m):
            if isinstance(m, nn.Sequential):
                for c in m:
                    walk(c)
            else:
                flat.append(m)

        for m in (modules if isinstance(modules, (list, tuple)) else [modules]):
            walk(m)
        layers: list[dict] = []
        for m in flat:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if m.padding_mode != "zeros" or (m.groups != 1 and isinstance(m, nn.ConvTranspose2d)):
                    raise CodecError(f"IntStack supports zero-padded convolutions (grouped ones not transposed), "
                                     f"not {m}")
                w = m.weight.detach().to("cpu", torch.float64)
                if not layers and in_mults is not None:
                    mult = torch.as_tensor(in_mults, dtype=torch.float64)
                    w = w * (mult.view(1, -1, 1, 1) if isinstance(m, nn.Conv2d) else mult.view(-1, 1, 1, 1))
                b = (m.bias.detach().to("cpu", torch.float64) if m.bias is not None
                     else torch.zeros(m.out_channels, dtype=torch.float64))
                transposed = isinstance(m, nn.ConvTranspose2d)
                layers.append({
                    "w": torch.round(w * float(1 << q_bits)), "b": torch.round(b * float(1 << (a_bits + q_bits))),
                    "transposed": transposed, "stride": tuple(m.stride), "padding": tuple(m.padding),
                    "dilation": tuple(m.dilation), "output_padding": tuple(m.output_padding) if transposed else (0, 0),
                    "groups": int(m.groups), "act": "none", "slope": 0})
            elif isinstance(m, nn.ReLU):
                cls._activation(layers, m, "relu", 0)
            elif isinstance(m, nn.LeakyReLU):
                cls._activation(layers, m, "leaky", int(round(float(m.negative_slope) * (1 << 16))))
            elif isinstance(m, nn.Identity):
                continue
            else:
                raise CodecError(f"IntStack cannot compile {type(m).__name__} (conv, transposed conv, ReLU, "
                                 "LeakyReLU only)")
        if not layers:
            raise CodecError("IntStack needs at least one convolution")
        for lay in layers:
            w, b = lay["w"], lay["b"]
            per_out = w.abs().sum(dim=(0, 2, 3) if lay["transposed"] else (1, 2, 3))
            room = EXACT - 1 - float(b.abs().max())
            bound = math.floor(room / max(float(per_out.max()), 1.0))
            if bound < (1 << (a_bits + 4)):
                raise CodecError(f"IntStack: weights too large for exact float64 evaluation at {a_bits}+{q_bits} bits "
                                 f"(activation bound {bound}); use fewer bits")
            lay["bound"] = float(min(bound, MAX_ACT))
        return cls(layers, a_bits, q_bits)

    def with_bias_offset(self, layer: int, offset: torch.Tensor) -> "IntStack":
        """A copy whose layer ``layer`` adds the integer ``offset`` (per output channel, at the accumulator scale
        ``2**(a_bits + q_bits)``) to its bias: a bias that depends on a setting (e.g. a quality level's embedding)
        without recompiling. The activation bound is recomputed for the new bias."""
        layers = [dict(lay) for lay in self.layers]
        lay = layers[layer]
        b = lay["b"] + torch.round(offset.to(torch.float64).reshape(lay["b"].shape))
        per_out = lay["w"].abs().sum(dim=(0, 2, 3) if lay["transposed"] else (1, 2, 3))
        bound = math.floor((EXACT - 1 - float(b.abs().max())) / max(float(per_out.max()), 1.0))
        if bound < (1 << (self.a_bits + 4)):
            raise CodecError(f"IntStack: bias too large for exact float64 evaluation (activation bound {bound})")
        lay["b"], lay["bound"] = b, float(min(bound, MAX_ACT, lay["bound"]))
        return IntStack(layers, self.a_bits, self.q_bits)

    @staticmethod
    def _activation(layers, m, kind, slope):
        if not layers or layers[-1]["act"] != "none":
            raise CodecError(f"IntStack: {type(m).__name__} must follow a convolution")
        layers[-1]["act"], layers[-1]["slope"] = kind, slope

    def _layers_on(self, device) -> list[dict]:
        key = str(device)
        if key not in self._on:
            self._on[key] = [dict(lay, w=lay["w"].to(device), b=lay["b"].to(device).view(1, -1, 1, 1))
                             for lay in self.layers]
        return self._on[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        for lay in self._layers_on(x.device):
            x = x.clamp(-lay["bound"], lay["bound"])
            acc = exact_conv2d(x, lay["w"], lay["stride"], lay["padding"], lay["dilation"], lay["transposed"],
                               lay["output_padding"], lay.get("groups", 1)) + lay["b"]
            x = requant(acc, self.q_bits)
            if lay["act"] == "relu":
                x = x.clamp_min(0)
            elif lay["act"] == "leaky":
                x = torch.where(x >= 0, x, torch.floor(x * float(lay["slope"]) / float(1 << 16)))
        return _record(x)

    def digest(self) -> bytes:
        """BLAKE2b-16 of the integer weights, biases and layer geometry (what the network computes)."""
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        h.update(VERSION.encode() + f"/{self.a_bits}/{self.q_bits}".encode())
        for lay in self.layers:
            h.update(repr({k: v for k, v in lay.items() if k not in ("w", "b")}).encode())
            h.update(lay["w"].to(torch.int64).numpy().tobytes() + lay["b"].to(torch.int64).numpy().tobytes())
        return h.digest()


# --------------------------------------------------------------------------------------------------------------
# fixed-point functions (int64 only)
# --------------------------------------------------------------------------------------------------------------
def to_fixed(x: torch.Tensor, bits: int = A_BITS) -> torch.Tensor:
    """``round(x * 2**bits)`` as int64 (exact for float inputs: scaling by a power of two never rounds)."""
    return torch.round(x.to(torch.float64) * float(1 << bits)).to(torch.int64)


def from_fixed(x: torch.Tensor, bits: int = A_BITS) -> torch.Tensor:
    """float32 value of fixed-point integers (for the float synthesis only)."""
    return (x.to(torch.float64) / float(1 << bits)).to(torch.float32)


def ilog2(x: torch.Tensor, frac_bits: int = LOG_BITS) -> torch.Tensor:
    """``log2(x) * 2**frac_bits`` (truncated) of positive int64 ``x`` by exponent search and repeated squaring of
    the mantissa: integer operations only. Values below 1 are treated as 1."""
    x = x.to(torch.int64).clamp_min(1)
    e = torch.zeros_like(x)
    for s in (32, 16, 8, 4, 2, 1):
        e = e + s * ((x >> (e + s)) > 0).to(torch.int64)
    m = torch.where(e >= _P, x >> (e - _P).clamp_min(0), x << (_P - e).clamp_min(0))  # in [2**P, 2**(P+1))
    frac = torch.zeros_like(x)
    two = 2 << _P
    for _ in range(frac_bits):
        m = (m * m) >> _P
        b = (m >= two).to(torch.int64)
        m = m >> b
        frac = (frac << 1) | b
    return (e << frac_bits) + frac


_EXP2_C: list[int] = [2 << _P]  # 2**(2**-i) in fixed point (2**_P = 1.0), by exact integer square roots
for _i in range(1, 33):
    _EXP2_C.append(math.isqrt(_EXP2_C[-1] << _P))


def exp2(t: torch.Tensor, frac_bits: int = LOG_BITS, out_bits: int = _P) -> torch.Tensor:
    """``2**(t / 2**frac_bits) * 2**out_bits`` (truncated) of int64 ``t``, for ``t / 2**frac_bits`` in [-60, 24]:
    integer part by a shift, fractional part as a product of ``2**(2**-i)`` constants."""
    t = t.to(torch.int64).clamp(-60 << frac_bits, 24 << frac_bits)
    n = torch.div(t, 1 << frac_bits, rounding_mode="floor")
    f = t - (n << frac_bits)
    r = torch.full_like(t, 1 << _P)
    for i in range(1, frac_bits + 1):
        bit = ((f >> (frac_bits - i)) & 1).bool()
        r = torch.where(bit, (r * _EXP2_C[i]) >> _P, r)
    shift = n + (out_bits - _P)
    return torch.where(shift >= 0, r << shift.clamp(0, 62), r >> (-shift).clamp(0, 62))


def log2e_mul(v: torch.Tensor, in_bits: int = A_BITS, frac_bits: int = LOG_BITS) -> torch.Tensor:
    """``floor(v * log2(e))`` from fixed point ``2**in_bits`` to ``2**frac_bits`` (natural-log units to base 2)."""
    v = v.to(torch.int64).clamp(-(1 << 30), 1 << 30)
    shift = 20 + in_bits - frac_bits
    prod = v * _LOG2E_20
    return torch.div(prod, 1 << shift, rounding_mode="floor") if shift >= 0 else prod << (-shift)


def sigmoid(v: torch.Tensor, in_bits: int = A_BITS, out_bits: int = 16) -> torch.Tensor:
    """``sigmoid(v / 2**in_bits) * 2**out_bits`` (floor) of int64 ``v``: ``1 / (1 + 2**(-v log2 e))``."""
    t = -log2e_mul(v, in_bits, LOG_BITS)
    den = (1 << _P) + exp2(t, LOG_BITS, _P)
    return torch.div(torch.full_like(den, 1 << (_P + out_bits)), den, rounding_mode="floor")


# --------------------------------------------------------------------------------------------------------------
# Gaussian table choice
# --------------------------------------------------------------------------------------------------------------
def scale_thresholds(scale_table: torch.Tensor, bits: int = A_BITS) -> torch.Tensor:
    """int64 ``floor(s * 2**bits)`` of a scale table (float32 buffer; the product is exact, so the same everywhere).
    For an integer scale ``v``: ``v / 2**bits <= s`` exactly when ``v <= floor(s * 2**bits)``."""
    return torch.floor(scale_table.detach().to("cpu", torch.float64) * float(1 << bits)).to(torch.int64)


def scale_indexes(scales: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Table index of each integer scale: the number of thresholds (all but the last) strictly below it, which is
    CompressAI's ``build_indexes`` (scales at or under the lowest level take table 0). int64, on ``scales``' device."""
    thr = thresholds[:-1].to(scales.device)
    return _record(torch.searchsorted(thr, scales.to(torch.int64).contiguous(), right=False))


def log_scale_indexes(log2_scales: torch.Tensor, thresholds: torch.Tensor, bits: int = A_BITS) -> torch.Tensor:
    """Table index from a scale given as ``log2(scale) * 2**LOG_BITS`` (int64): the number of thresholds (all but
    the last) whose fixed-point log is strictly below it."""
    lt = ilog2(thresholds[:-1]) - (bits << LOG_BITS)
    return _record(torch.searchsorted(lt.to(log2_scales.device), log2_scales.to(torch.int64).contiguous(),
                                      right=False))
