"""Integer CDF tables: the only probability representation the coder sees.

A :class:`CdfTables` holds ``K`` tables. Table ``k`` codes ``lengths[k]`` symbols ``0 .. lengths[k]-1``; the
last one (``lengths[k]-1``) is the *escape* symbol. A value ``v`` coded with table ``k`` maps to the symbol
``v - offsets[k]`` when ``0 <= v - offsets[k] < lengths[k] - 1``; any other value is coded as the escape symbol
followed by its exact value in a side stream (see :mod:`codec.entropy.coder`). Nothing is ever clipped.

``cdfs[k, :lengths[k] + 1]`` is the cumulative frequency table: ``cdfs[k, 0] == 0``,
``cdfs[k, lengths[k]] == 2**precision`` and strictly increasing, so every symbol (the escape included) has a
non-zero probability. This is the layout of CompressAI's ``_quantized_cdf`` / ``_cdf_length - 1`` / ``_offset``,
so its tables convert without change.

Tables are immutable (the arrays are read-only) and carry a fingerprint: the SHA-256 of their canonical bytes
(:meth:`CdfTables.canonical_bytes`), truncated to 16 bytes. It goes into every bitstream header.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from typing import Iterable, Sequence

import numpy as np

from codec.errors import EntropyError

MAX_PRECISION = 24  # constriction's Python coder works with 24-bit probabilities
MAX_TABLES = 1 << 20
MAX_OFFSET = 1 << 30  # keeps the coder's wrap-around int32 range check exact
_CANONICAL_VERSION = 1


def _as_int_array(x, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise EntropyError(f"{name} must be an integer array, got dtype {a.dtype}")
    return a


def quantize_pmf(pmf: np.ndarray, precision: int) -> np.ndarray:
    """Quantise one probability vector to integer frequencies summing to ``2**precision``, each at least 1.

    Every symbol gets one unit; the remaining ``2**precision - n`` units are shared in proportion to ``pmf`` by the
    largest-remainder method (the integer split closest to the float one).
    """
    p = np.asarray(pmf, dtype=np.float64)
    n = p.size
    total = 1 << precision
    if n < 2:
        raise EntropyError(f"a table needs at least 2 symbols (escape included), got {n}")
    if n > total:
        raise EntropyError(f"{n} symbols do not fit at {precision}-bit precision (at most {total})")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise EntropyError("probabilities must be finite and non-negative")
    s = p.sum()
    if s <= 0:
        raise EntropyError("probabilities sum to zero")
    free = total - n
    raw = p / s * free
    freq = np.floor(raw).astype(np.int64)
    rem = free - int(freq.sum())
    if rem > 0:
        frac = raw - freq
        top = np.argsort(-frac, kind="stable")[:rem]
        freq[top] += 1
    freq += 1
    assert int(freq.sum()) == total
    return freq


class CdfTables:
    """Immutable integer CDF tables (see the module docstring for the layout)."""

    __slots__ = ("_cdfs", "_lengths", "_offsets", "_precision", "_fp", "_cache")

    def __init__(self, cdfs, lengths, offsets, precision: int):
        cdfs = _as_int_array(cdfs, "cdfs")
        lengths = _as_int_array(lengths, "lengths").reshape(-1)
        offsets = _as_int_array(offsets, "offsets").reshape(-1)
        if not isinstance(precision, (int, np.integer)) or not 1 <= int(precision) <= MAX_PRECISION:
            raise EntropyError(f"precision must be an integer in 1..{MAX_PRECISION}, got {precision!r}")
        precision = int(precision)
        if cdfs.ndim != 2:
            raise EntropyError(f"cdfs must be 2-D (tables x entries), got shape {cdfs.shape}")
        k = cdfs.shape[0]
        if not 1 <= k <= MAX_TABLES:
            raise EntropyError(f"need 1..{MAX_TABLES} tables, got {k}")
        if lengths.shape != (k,) or offsets.shape != (k,):
            raise EntropyError(
                f"lengths and offsets must have one entry per table ({k}), got {lengths.shape} and {offsets.shape}"
            )
        total = 1 << precision
        if lengths.min() < 2:
            raise EntropyError("every table needs at least 2 symbols (one value and the escape symbol)")
        if lengths.max() + 1 > cdfs.shape[1]:
            raise EntropyError(f"a length of {int(lengths.max())} needs {int(lengths.max()) + 1} CDF entries, "
                               f"the array has {cdfs.shape[1]}")
        if lengths.max() > total:
            raise EntropyError(f"a table of {int(lengths.max())} symbols does not fit at {precision}-bit precision")
        if offsets.min() < -MAX_OFFSET or offsets.max() > MAX_OFFSET:
            raise EntropyError(f"offsets must be within +-2**30, got {int(offsets.min())}..{int(offsets.max())}")
        c64 = cdfs.astype(np.int64)
        width = int(lengths.max()) + 1
        out = np.full((k, width), total, dtype=np.int32)
        col = np.arange(width)[None, :]
        valid = col <= lengths[:, None]
        cv = np.where(valid, c64[:, :width], total)
        if np.any(cv[:, 0] != 0):
            raise EntropyError("every CDF must start at 0")
        if np.any(cv[np.arange(k), lengths] != total):
            raise EntropyError(f"every CDF must end at 2**precision = {total} at index lengths[k]")
        d = np.diff(cv, axis=1)
        inner = col[:, 1:] <= lengths[:, None]
        if np.any((d <= 0) & inner):
            raise EntropyError("CDFs must be strictly increasing (every symbol needs a non-zero probability)")
        out[:] = cv
        self._cdfs = out
        self._lengths = lengths.astype(np.int32)
        self._offsets = offsets.astype(np.int32)
        for a in (self._cdfs, self._lengths, self._offsets):
            a.setflags(write=False)
        self._precision = precision
        self._fp = None
        self._cache = {}

    # --- immutability -------------------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if name in CdfTables.__slots__ and not hasattr(self, name):
            object.__setattr__(self, name, value)
        elif name in ("_fp",):
            object.__setattr__(self, name, value)
        else:
            raise AttributeError("CdfTables is immutable")

    # --- accessors ------------------------------------------------------------------------------------------------
    @property
    def cdfs(self) -> np.ndarray:
        return self._cdfs

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets

    @property
    def precision(self) -> int:
        return self._precision

    @property
    def num_tables(self) -> int:
        return int(self._cdfs.shape[0])

    def __len__(self) -> int:
        return self.num_tables

    def __repr__(self) -> str:
        return (f"CdfTables(num_tables={self.num_tables}, max_length={int(self._lengths.max())}, "
                f"precision={self._precision}, fingerprint={self.fingerprint})")

    def __eq__(self, other) -> bool:
        return isinstance(other, CdfTables) and self.fingerprint_bytes == other.fingerprint_bytes

    def __hash__(self) -> int:
        return hash(self.fingerprint_bytes)

    def frequencies(self, k: int) -> np.ndarray:
        """Integer frequencies of table ``k`` (escape symbol last); they sum to ``2**precision``."""
        n = int(self._lengths[k])
        return np.diff(self._cdfs[k, : n + 1].astype(np.int64))

    # --- fingerprint and serialisation ---------------------------------------------------------------------------
    def canonical_bytes(self) -> bytes:
        """Canonical little-endian encoding: version, precision, K, lengths, offsets, then each valid CDF."""
        parts = [struct.pack("<BBI", _CANONICAL_VERSION, self._precision, self.num_tables),
                 self._lengths.astype("<i4").tobytes(), self._offsets.astype("<i4").tobytes()]
        for k in range(self.num_tables):
            parts.append(self._cdfs[k, : int(self._lengths[k]) + 1].astype("<i4").tobytes())
        return b"".join(parts)

    @property
    def fingerprint_bytes(self) -> bytes:
        if self._fp is None:
            self._fp = hashlib.sha256(self.canonical_bytes()).digest()[:16]
        return self._fp

    @property
    def fingerprint(self) -> str:
        return self.fingerprint_bytes.hex()

    def state_dict(self) -> dict:
        """Tensors for a checkpoint (``torch.save`` / ``torch.load(weights_only=True)`` / safetensors).

        Stored compactly, since the tables are most of an audio checkpoint otherwise: ``freq_zlib`` holds each
        table's ``lengths[k]`` symbol frequencies (the CDF's differences), concatenated, as little-endian
        ``freq_bytes``-byte integers (2 up to 16-bit precision, else 4), zlib-compressed (uint8 tensor). Most
        frequencies are small and repeat, so this is 5 to 10 times smaller than the int32 CDF rows. The CDF is
        rebuilt by an exact integer cumulative sum and checked against the stored fingerprint."""
        import torch

        freq = np.concatenate([np.diff(self._cdfs[k, : int(self._lengths[k]) + 1]) for k in range(self.num_tables)])
        width = 2 if self._precision <= 16 else 4
        packed = zlib.compress(freq.astype(f"<u{width}").tobytes(), 9)
        return {
            "freq_zlib": torch.frombuffer(bytearray(packed), dtype=torch.uint8).clone(),
            "freq_bytes": torch.tensor(width, dtype=torch.int32),
            "lengths": torch.from_numpy(self._lengths.copy()),
            "offsets": torch.from_numpy(self._offsets.copy()),
            "precision": torch.tensor(self._precision, dtype=torch.int32),
            "fingerprint": torch.frombuffer(bytearray(self.fingerprint_bytes), dtype=torch.uint8).clone(),
        }

    @staticmethod
    def _unpack_freq(state: dict, count: int) -> np.ndarray:
        """The ``count`` frequencies of ``freq_zlib`` (int64), refusing any other length without inflating more."""
        width = int(state.get("freq_bytes", 2))
        if width not in (2, 4):
            raise EntropyError(f"CDF frequencies of {width} bytes are not supported (2 or 4)")
        raw = _as_int_array(state["freq_zlib"], "freq_zlib").reshape(-1).astype(np.uint8).tobytes()
        z = zlib.decompressobj()
        try:
            data = z.decompress(raw, count * width + 1)
        except zlib.error as e:
            raise EntropyError(f"compressed CDF frequencies are corrupt ({e})") from None
        if len(data) != count * width:
            raise EntropyError(f"compressed CDF frequencies hold {'more than ' if len(data) > count * width else ''}"
                               f"{len(data) // width} entries, the lengths need {count}")
        if not z.eof:
            raise EntropyError("compressed CDF frequencies are truncated (the zlib stream does not end)")
        return np.frombuffer(data, dtype=f"<u{width}").astype(np.int64)

    @classmethod
    def from_state_dict(cls, state: dict) -> "CdfTables":
        """Rebuild from :meth:`state_dict` (``freq_zlib``, or the older ragged ``cdf_flat`` or padded ``cdfs``);
        the stored fingerprint must match the tables (else corrupt)."""
        try:
            lengths = _as_int_array(state["lengths"], "lengths").reshape(-1).astype(np.int64)
            offsets, precision = state["offsets"], int(state["precision"])
            if lengths.size < 1 or lengths.min() < 2:
                raise EntropyError("every CDF table needs at least 2 symbols")
            if "freq_zlib" in state or "cdf_flat" in state:
                if "freq_zlib" in state:
                    freq = cls._unpack_freq(state, int(lengths.sum()))
                    # each row: a leading 0, then the running sum of its frequencies (exact integers)
                    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
                    run = np.cumsum(freq)
                    run -= np.repeat(run[starts] - freq[starts], lengths)
                    flat = np.insert(run, starts, 0)
                else:
                    flat = _as_int_array(state["cdf_flat"], "cdf_flat").reshape(-1).astype(np.int64)
                if int((lengths + 1).sum()) != flat.size:
                    raise EntropyError(f"ragged CDF data has {flat.size} entries, the lengths need "
                                       f"{int((lengths + 1).sum())}")
                # ragged rows -> padded array in one scatter (row-major order is the concatenation order)
                width = int(lengths.max()) + 1
                arr = np.full((lengths.size, width), 1 << precision, dtype=np.int64)
                arr[np.arange(width)[None, :] <= lengths[:, None]] = flat
                t = cls(arr, lengths, np.asarray(offsets, dtype=np.int64).reshape(-1), precision)
            else:
                t = cls(state["cdfs"], lengths, offsets, precision)
        except KeyError as e:
            raise EntropyError(f"CDF table state is missing the entry {e}") from None
        fp = state.get("fingerprint")
        if fp is not None:
            fpb = bytes(np.asarray(fp.cpu().numpy() if hasattr(fp, "cpu") else fp, dtype=np.uint8).tobytes())
            if fpb != t.fingerprint_bytes:
                raise EntropyError("CDF tables do not match their stored fingerprint (corrupt checkpoint)")
        return t

    # --- constructors -------------------------------------------------------------------------------------------
    @classmethod
    def from_cdfs(cls, cdfs: Sequence[Sequence[int]], offsets, precision: int) -> "CdfTables":
        """From a list of CDF rows of varying length (each ``[0, ..., 2**precision]``, escape symbol last)."""
        rows = [np.asarray(r, dtype=np.int64).reshape(-1) for r in cdfs]
        if not rows:
            raise EntropyError("need at least one table")
        lengths = np.array([r.size - 1 for r in rows], dtype=np.int64)
        width = max(r.size for r in rows)
        arr = np.full((len(rows), width), 1 << precision, dtype=np.int64)
        for i, r in enumerate(rows):
            arr[i, : r.size] = r
        return cls(arr, lengths, np.asarray(offsets, dtype=np.int64).reshape(-1), precision)

    @classmethod
    def concatenate(cls, parts: Sequence["CdfTables"]) -> "CdfTables":
        """One set of tables holding ``parts`` in order (table ``k`` of part ``j`` gets index ``k`` plus the number
        of tables before part ``j``), so streams that interleave symbols of several models (e.g. a video frame's
        hyper-latent and latent) code into one rANS stream. All parts must share a precision."""
        parts = list(parts)
        if not parts or any(not isinstance(p, CdfTables) for p in parts):
            raise EntropyError("concatenate needs a non-empty list of CdfTables")
        if len({p.precision for p in parts}) != 1:
            raise EntropyError(f"cannot concatenate tables of precisions {sorted({p.precision for p in parts})}")
        width = max(p.cdfs.shape[1] for p in parts)
        total = 1 << parts[0].precision
        cdfs = np.concatenate([np.pad(p.cdfs, ((0, 0), (0, width - p.cdfs.shape[1])), constant_values=total)
                               for p in parts])
        return cls(cdfs, np.concatenate([p.lengths for p in parts]), np.concatenate([p.offsets for p in parts]),
                   parts[0].precision)

    @classmethod
    def from_pmfs(cls, pmfs: Iterable, offsets, precision: int = 16, tail_mass=None) -> "CdfTables":
        """From probability vectors over the values ``offsets[k] + 0, 1, ...``.

        An escape bin is appended to each table. Its probability is ``tail_mass[k]`` when given, otherwise the mass
        the vector leaves out (``1 - sum(pmf)``); either way it gets at least one unit at ``precision`` bits.
        """
        pmfs = [np.asarray(p, dtype=np.float64).reshape(-1) for p in pmfs]
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        if offsets.size == 1 and len(pmfs) > 1:
            offsets = np.repeat(offsets, len(pmfs))
        if len(pmfs) != offsets.size:
            raise EntropyError(f"{len(pmfs)} pmfs but {offsets.size} offsets")
        if tail_mass is None:
            tails = [max(0.0, 1.0 - float(p.sum())) for p in pmfs]
        else:
            tails = np.broadcast_to(np.asarray(tail_mass, dtype=np.float64), (len(pmfs),)).tolist()
        rows = []
        for p, t in zip(pmfs, tails):
            freq = quantize_pmf(np.concatenate([p, [t]]), precision)
            rows.append(np.concatenate([[0], np.cumsum(freq)]))
        return cls.from_cdfs(rows, offsets, precision)

    @classmethod
    def from_counts(cls, counts, offsets=0, precision: int = 16) -> "CdfTables":
        """From symbol counts (a learned frequency prior), one row per table, with add-one smoothing."""
        counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
        pmfs = (counts + 1.0) / (counts + 1.0).sum(axis=1, keepdims=True)
        return cls.from_pmfs(list(pmfs), offsets, precision, tail_mass=0.0)

    @classmethod
    def gaussian(cls, scales, precision: int = 16, tail_mass: float = 1e-9) -> "CdfTables":
        """Discretised zero-mean Gaussian tables, one per scale (the GaussianConditional case).

        Table ``k`` covers the integers ``[-r, r]`` with ``r = ceil(scales[k] * Phi^-1(1 - tail_mass / 2))``;
        bin ``v`` has mass ``Phi((v + 1/2) / s) - Phi((v - 1/2) / s)`` and the two tails go to the escape bin.
        """
        import torch

        scales = np.asarray(scales, dtype=np.float64).reshape(-1)
        if scales.size == 0 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise EntropyError("scales must be positive and finite")
        if not 0 < tail_mass < 1:
            raise EntropyError("tail_mass must be in (0, 1)")
        z = float(torch.special.ndtri(torch.tensor(1.0 - tail_mass / 2, dtype=torch.float64)))
        pmfs, offsets = [], []
        for s in scales:
            r = max(1, int(math.ceil(s * z)))
            v = torch.arange(-r, r + 1, dtype=torch.float64)
            upper = torch.special.ndtr((v + 0.5) / s)
            lower = torch.special.ndtr((v - 0.5) / s)
            pmf = (upper - lower).numpy()
            pmfs.append(pmf)
            offsets.append(-r)
        return cls.from_pmfs(pmfs, offsets, precision)

    # --- ideal information content ------------------------------------------------------------------------------
    def information_content(self, symbols, indexes=None) -> float:
        """Ideal code length in bits, ``sum(-log2 p)`` under these quantised tables.

        An out-of-range value counts the cost of its escape symbol only (its exact value travels in a side stream).
        """
        return float(np.sum(self.element_bits(symbols, indexes)))

    def element_bits(self, symbols, indexes=None) -> np.ndarray:
        """Ideal code length in bits of each symbol (flattened, float64), as counted by
        :meth:`information_content`: what an encoder needs for rate decisions (e.g. per-block coding modes)."""
        s = _as_int_array(symbols, "symbols").reshape(-1).astype(np.int64)
        if indexes is None or np.ndim(indexes) == 0:
            k = np.full(s.shape, 0 if indexes is None else int(indexes), dtype=np.int64)
        else:
            k = _as_int_array(indexes, "indexes").reshape(-1).astype(np.int64)
        v = s - self._offsets[k]
        esc = self._lengths[k].astype(np.int64) - 1
        v = np.where((v < 0) | (v >= esc), esc, v)
        cd = self._cdfs
        f = cd[k, v + 1].astype(np.int64) - cd[k, v]
        return self._precision - np.log2(f)
