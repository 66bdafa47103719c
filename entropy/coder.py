"""rANS coding of integer symbols under :class:`~codec.entropy.tables.CdfTables`, on constriction.

Engine
------
The coder is constriction's ``AnsCoder`` (32-bit words, 64-bit state, 24-bit probabilities). Each table becomes a
``constriction.stream.model.Categorical(p, perfect=False)`` with ``p[i] = (freq[i] << (24 - precision)) - 1``:
constriction's ``perfect=False`` quantiser gives every symbol one unit and spreads ``2**24 - n`` units in
proportion to ``p``; with these ``p`` the scale is exactly 1 and the CDF it builds equals ours bit for bit
(checked by ``tests/test_entropy.py::test_backend_uses_exact_tables``). So the coder sees our integer tables, never
a float re-quantisation. The models are built once per table and cached on the ``CdfTables`` object.

Symbols that share a table are coded together with one vectorised constriction call: a chunk's symbols are
grouped by table index with a stable radix sort, so there is no Python loop per symbol. With a single shared table
(``indexes=None`` or an int) there is no grouping at all (the fast path for token streams).

Escapes: a value outside its table's range is coded as the table's escape symbol, and its exact offset from the
range, zig-zag mapped to an unsigned integer, goes into a LEB128 varint side stream. Nothing is clipped.

Coded stream layout (little-endian)::

    u8   version (= 2; version 1, written by codec 0.1, lacks the symbol count and is still read)
    u32  CRC-32 of every byte after this field
    var  number of symbols N                   (LEB128; version 2 only)
    var  number of escape-stream bytes E       (LEB128)
    var  number of 32-bit ANS words W          (LEB128)
    E    escape stream: one LEB128 varint per escaped symbol, in coding order
    4W   ANS words, uint32 little-endian

The CRC and the exact length check mean corrupt or truncated data raises :class:`EntropyError` before the ANS
decoder runs (ANS itself would decode garbage without noticing). Decoding also checks that every escape value and
every ANS word was consumed.

Bounded decoding: a stream says how many symbols it holds (N), and a decoder asks for them before it allocates
anything (:meth:`Decoder.expect`; every :meth:`Decoder.decode` call is checked against what is left), so a header
whose geometry asks for more symbols than the stream holds is refused before any memory is spent on it. N itself
is checked against what W words can hold at all: each symbol costs at least ``-log2(p_max)`` bits, where p_max is
the largest probability in the tables, and rANS with a 64-bit state emits at least ``(1 - 2**-8)`` of a symbol's
information content (the state's rounding loses at most ``2**-8`` of it, as the state stays above ``2**32`` and the
frequencies below ``2**24``), so ``N * 0.99 * min_bits <= 32 W + 96``. Version 1 streams, which carry no N, get
that rate bound alone.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from codec.errors import DivergenceError, EntropyError
from codec.entropy.tables import CdfTables, _as_int_array

try:
    import constriction as _constriction
except ImportError as e:  # pragma: no cover
    raise ImportError("codec.entropy needs the 'constriction' package (pip install constriction==0.5.0)") from e

FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
ENGINE_PRECISION = 24
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


# --------------------------------------------------------------------------------------------------------------
# constriction plumbing
# --------------------------------------------------------------------------------------------------------------
def _is_panic(e: BaseException) -> bool:
    return type(e).__name__ == "PanicException"


def _call(fn, *args):
    """Call into constriction; Rust panics and argument errors become EntropyError."""
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as e:  # pyo3's PanicException derives from BaseException
        if isinstance(e, Exception) or _is_panic(e):
            raise EntropyError(f"entropy coder rejected the data: {e}") from None
        raise


def _model(tables: CdfTables, k: int):
    cache = tables._cache
    m = cache.get(k)
    if m is None:
        freq = tables.frequencies(k)
        p = ((freq << (ENGINE_PRECISION - tables.precision)) - 1).astype(np.float64)
        m = _constriction.stream.model.Categorical(p, perfect=False)
        cache[k] = m
    return m


# --------------------------------------------------------------------------------------------------------------
# varints (vectorised LEB128)
# --------------------------------------------------------------------------------------------------------------
def _varint_encode(values: np.ndarray) -> bytes:
    u = np.asarray(values, dtype=np.uint64).reshape(-1)
    if u.size == 0:
        return b""
    nbytes = np.ones(u.shape, dtype=np.int64)
    t = u >> np.uint64(7)
    while np.any(t):
        nbytes += t > 0
        t = t >> np.uint64(7)
    starts = np.cumsum(nbytes) - nbytes
    out = np.empty(int(nbytes.sum()), dtype=np.uint8)
    for j in range(int(nbytes.max())):
        sel = nbytes > j
        byte = (u[sel] >> np.uint64(7 * j)) & np.uint64(0x7F)
        cont = (nbytes[sel] > j + 1).astype(np.uint64) << np.uint64(7)
        out[starts[sel] + j] = (byte | cont).astype(np.uint8)
    return out.tobytes()


def _varint_decode(buf: bytes) -> np.ndarray:
    b = np.frombuffer(buf, dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.uint64)
    ends = np.flatnonzero((b & 0x80) == 0)
    if ends.size == 0 or ends[-1] != b.size - 1:
        raise EntropyError("escape stream is truncated (a varint runs past its end)")
    starts = np.concatenate([[0], ends[:-1] + 1])
    lens = ends - starts + 1
    if lens.max() > 10:
        raise EntropyError("escape stream is corrupt (a varint longer than 10 bytes)")
    owner = np.repeat(np.arange(ends.size), lens)
    pos = np.arange(b.size) - starts[owner]
    part = (b & 0x7F).astype(np.uint64) << (7 * pos).astype(np.uint64)
    out = np.zeros(ends.size, dtype=np.uint64)
    np.bitwise_or.at(out, owner, part)
    return out


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """One LEB128 varint at ``pos``: (value, position after it)."""
    value, shift = 0, 0
    for i in range(10):
        if pos + i >= len(buf):
            raise EntropyError("coded data is truncated (header ends early)")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise EntropyError("coded data is corrupt (bad length field)")


def write_varint(v: int) -> bytes:
    """LEB128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


# --------------------------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------------------------
def _symbols_array(symbols) -> np.ndarray:
    s = _as_int_array(symbols, "symbols")
    if s.dtype != np.int32:
        if s.size and (s.min() < _INT32_MIN or s.max() > _INT32_MAX):
            raise EntropyError("symbol values must fit in int32")
        s = s.astype(np.int32)
    return np.ascontiguousarray(s).reshape(-1)


def _table_id(tables: CdfTables, index) -> int:
    k = 0 if index is None else index
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise EntropyError(f"a shared table index must be an int, got {type(index).__name__}")
    if not 0 <= int(k) < tables.num_tables:
        raise EntropyError(f"table index {int(k)} is outside 0..{tables.num_tables - 1}")
    return int(k)


def _indexes_array(indexes, tables: CdfTables, shape) -> np.ndarray:
    k = _as_int_array(indexes, "indexes")
    if shape is not None and tuple(k.shape) != tuple(shape):
        raise EntropyError(f"indexes shape {tuple(k.shape)} does not match symbols shape {tuple(shape)}")
    k = k.reshape(-1)
    if k.size:
        if k.dtype.itemsize > 4 or k.dtype.kind == "u":
            bad = k.min() < 0 or k.max() >= tables.num_tables
        else:  # one pass: negatives wrap to huge unsigned values
            bad = int(k.astype(np.int32, copy=False).view(np.uint32).max()) >= tables.num_tables
        if bad:
            raise EntropyError(f"table index out of range: got {int(k.min())}..{int(k.max())}, "
                               f"tables are 0..{tables.num_tables - 1}")
    return k


def _grouping(k: np.ndarray, num_tables: int):
    """Stable permutation grouping ``k`` by table, and the count of each table (radix sort on small ints)."""
    small = k.astype(np.uint8 if num_tables <= 256 else np.uint16 if num_tables <= 65536 else np.int64)
    order = np.argsort(small, kind="stable")
    counts = np.bincount(small, minlength=num_tables)
    return order, counts


def _is_shared(indexes) -> bool:
    return indexes is None or np.ndim(indexes) == 0


# --------------------------------------------------------------------------------------------------------------
# streaming coder
# --------------------------------------------------------------------------------------------------------------
def _prepare_group(seg: np.ndarray, original, off: int, esc: int, escapes: list) -> None:
    """In place: values -> table symbols (``v - off``); out-of-range ones -> the escape symbol ``esc``.

    int32 arithmetic wraps; with ``|off| <= 2**30`` the unsigned test ``(v - off) mod 2**32 < esc`` is exactly
    ``0 <= v - off < esc``. ``original`` gives the true values of the escaped positions (their zig-zag offset from
    the range goes to ``escapes``).
    """
    if off:
        np.subtract(seg, np.int32(off), out=seg)
    bad = seg.view(np.uint32) >= esc
    if bad.any():
        pos = np.flatnonzero(bad)
        d = original(pos).astype(np.int64) - off
        escapes.append(np.where(d < 0, -2 * d - 1, 2 * (d - esc)).astype(np.uint64))
        seg[pos] = esc


class Encoder:
    """Streaming encoder: call :meth:`encode` for each chunk, then :meth:`finish` for the bytes.

    ANS is last-in-first-out, so chunks are buffered and pushed in reverse at :meth:`finish`; the
    :class:`Decoder` then pops them in the order they were given (what autoregressive decoding needs).
    Within a chunk, symbols are coded table by table (ascending table id); escape values follow the same order.
    """

    def __init__(self, tables: CdfTables):
        if not isinstance(tables, CdfTables):
            raise EntropyError(f"tables must be CdfTables, got {type(tables).__name__}")
        self.tables = tables
        self._chunks: list[list[tuple[int, np.ndarray]]] = []
        self._escapes: list[np.ndarray] = []
        self._finished = False
        self.num_symbols = 0

    def encode(self, symbols, indexes=None) -> None:
        """Queue one chunk. ``indexes``: an integer array of table ids shaped like ``symbols``, or one int (or
        ``None`` for table 0) shared by every symbol."""
        if self._finished:
            raise EntropyError("encoder already finished")
        t = self.tables
        shape = np.shape(symbols)
        s = _symbols_array(symbols)
        if _is_shared(indexes):
            k = _table_id(t, indexes)
            if s.size == 0:
                return
            off, esc = int(t.offsets[k]), int(t.lengths[k]) - 1
            if off == 0 and not (s.view(np.uint32) >= esc).any():
                coded = s  # fast path: no copy
            else:
                coded = s.copy()
                _prepare_group(coded, lambda pos: s[pos], off, esc, self._escapes)
            self._chunks.append([(k, coded)])
        else:
            kk = _indexes_array(indexes, t, shape)
            if s.size == 0:
                return
            order, counts = _grouping(kk, t.num_tables)
            grouped = s[order]
            groups, start = [], 0
            for tid in np.flatnonzero(counts):
                n = int(counts[tid])
                seg = grouped[start: start + n]
                base = start
                _prepare_group(seg, lambda pos: s[order[base + pos]], int(t.offsets[tid]),
                               int(t.lengths[tid]) - 1, self._escapes)
                groups.append((int(tid), seg))
                start += n
            self._chunks.append(groups)
        self.num_symbols += s.size

    def finish(self) -> bytes:
        if self._finished:
            raise EntropyError("encoder already finished")
        self._finished = True
        coder = _constriction.stream.stack.AnsCoder()
        for groups in reversed(self._chunks):
            for k, arr in reversed(groups):
                _call(coder.encode_reverse, arr, _model(self.tables, k))
        words = _call(coder.get_compressed).astype("<u4", copy=False).tobytes()
        esc = _varint_encode(np.concatenate(self._escapes)) if self._escapes else b""
        head = write_varint(self.num_symbols) + write_varint(len(esc)) + write_varint(len(words) // 4) + esc
        crc = zlib.crc32(words, zlib.crc32(head))
        self._chunks.clear()
        return b"".join((struct.pack("<BI", FORMAT_VERSION, crc), head, words))


class Decoder:
    """Streaming decoder over bytes made by :class:`Encoder`; call :meth:`decode` per chunk, then :meth:`finish`."""

    def __init__(self, data, tables: CdfTables):
        if not isinstance(tables, CdfTables):
            raise EntropyError(f"tables must be CdfTables, got {type(tables).__name__}")
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise EntropyError(f"coded data must be bytes, got {type(data).__name__}")
        self.tables = tables
        if len(data) < 5:
            raise EntropyError(f"coded data is truncated ({len(data)} bytes, the header alone is 5)")
        version, crc = struct.unpack_from("<BI", data, 0)
        if version not in READ_VERSIONS:
            raise EntropyError(f"coded data has format version {version}, this decoder reads "
                               f"{', '.join(map(str, READ_VERSIONS))} (corrupt data or a newer file)")
        body = memoryview(data)[5:]
        if zlib.crc32(body) != crc:
            raise EntropyError("coded data is corrupt or truncated (CRC mismatch)")
        n_sym, pos = read_varint(body, 0) if version >= 2 else (None, 0)
        n_esc, pos = read_varint(body, pos)
        n_words, pos = read_varint(body, pos)
        if pos + n_esc + 4 * n_words != len(body):
            raise EntropyError(f"coded data is truncated or has trailing bytes: the header announces "
                               f"{pos + n_esc + 4 * n_words} bytes, there are {len(body)}")
        #: symbols the stream holds (None for version 1 streams) and the most ``n_words`` words can hold at all
        self.num_symbols = n_sym
        self.max_symbols = max_symbols(tables, n_words)
        if n_sym is not None and n_sym > self.max_symbols:
            raise EntropyError(f"coded data is corrupt: it announces {n_sym} symbols, more than its {n_words} "
                               f"words can hold under these tables (at most {self.max_symbols})")
        self._left = n_sym if n_sym is not None else self.max_symbols
        self._esc = _varint_decode(bytes(body[pos: pos + n_esc]))
        self._esc_pos = 0
        words = np.frombuffer(data, dtype="<u4", count=n_words, offset=5 + pos + n_esc)
        if words.dtype != np.uint32:  # big-endian host: convert to native order
            words = words.astype(np.uint32)
        self._coder = _call(_constriction.stream.stack.AnsCoder, words)
        self._finished = False

    def expect(self, n: int) -> None:
        """Say that ``n`` symbols will be decoded in all (before allocating for them): raises EntropyError when the
        stream holds another number (or, for version 1 streams, more than it could hold)."""
        n = int(n)
        if self.num_symbols is not None and n != self.num_symbols:
            raise EntropyError(f"the header's geometry asks for {n} symbols, the coded stream holds "
                               f"{self.num_symbols} (corrupt or forged file)")
        if n > self.max_symbols:
            raise EntropyError(f"the header's geometry asks for {n} symbols, more than the coded stream can hold "
                               f"(at most {self.max_symbols}; corrupt or forged file)")

    @property
    def remaining(self) -> int:
        """Symbols left to decode (for version 1 streams: an upper bound)."""
        return self._left

    def _take(self, n: int) -> None:
        if n > self._left:
            raise EntropyError(f"the decoder asks for {n} more symbols, the coded stream has {self._left} left "
                               "(the header's geometry does not match the stream: corrupt or forged file)")
        self._left -= n

    def _group(self, k: int, n: int) -> np.ndarray:
        """Decode ``n`` symbols of table ``k`` and turn them into values (escapes resolved), int32."""
        t = self.tables
        seg = _call(self._coder.decode, _model(t, k), n)
        off, esc = int(t.offsets[k]), int(t.lengths[k]) - 1
        bad = seg == esc
        if off:
            np.add(seg, np.int32(off), out=seg)
        if bad.any():
            pos = np.flatnonzero(bad)
            m = pos.size
            if self._esc_pos + m > self._esc.size:
                raise DivergenceError("coded data does not decode consistently: more escaped symbols than escape "
                                      "values")
            u = self._esc[self._esc_pos: self._esc_pos + m]
            self._esc_pos += m
            if np.any(u >= np.uint64(1 << 34)):
                raise DivergenceError("coded data does not decode consistently: escape value out of range")
            u = u.astype(np.int64)
            v = np.where(u & 1, -(u + 1) // 2, u // 2 + esc) + off
            if v.min() < _INT32_MIN or v.max() > _INT32_MAX:
                raise DivergenceError("coded data does not decode consistently: a decoded value does not fit in "
                                      "int32")
            seg[pos] = v
        return seg

    def decode(self, indexes=None, shape=None) -> np.ndarray:
        """Decode one chunk. ``indexes``: an integer array of table ids (its shape is the output shape), or one
        int / ``None`` shared by every symbol together with ``shape``. Returns int32 values."""
        if self._finished:
            raise EntropyError("decoder already finished")
        t = self.tables
        if _is_shared(indexes):
            if shape is None:
                raise EntropyError("decoding with a shared table needs the output shape")
            try:
                shape = tuple(int(x) for x in np.atleast_1d(shape))
            except (TypeError, ValueError):
                raise EntropyError(f"invalid shape {shape!r}") from None
            if any(x < 0 for x in shape):
                raise EntropyError(f"invalid shape {shape}")
            k = _table_id(t, indexes)
            n = 1
            for x in shape:  # exact (Python ints), so a forged shape cannot overflow the count
                n *= x
            self._take(n)
            if n == 0:
                return np.zeros(shape, dtype=np.int32)
            return self._group(k, n).reshape(shape)
        kk_in = _as_int_array(indexes, "indexes")
        shape = kk_in.shape
        self._take(kk_in.size)
        kk = _indexes_array(kk_in, t, None)
        if kk.size == 0:
            return np.zeros(shape, dtype=np.int32)
        order, counts = _grouping(kk, t.num_tables)
        grouped = np.empty(kk.size, dtype=np.int32)
        start = 0
        for tid in np.flatnonzero(counts):
            n = int(counts[tid])
            grouped[start: start + n] = self._group(int(tid), n)
            start += n
        out = np.empty(kk.size, dtype=np.int32)
        out[order] = grouped
        return out.reshape(shape)

    def finish(self) -> None:
        """Check that everything was consumed; raise EntropyError otherwise (wrong indexes or corrupt data)."""
        if self._finished:
            return
        self._finished = True
        if self.num_symbols is not None and self._left:
            raise DivergenceError(f"coded data has {self._left} symbols left undecoded (decoded with other "
                                  "indexes/tables than it was encoded with, or corrupt)")
        if self._esc_pos != self._esc.size:
            raise DivergenceError(f"coded data has {self._esc.size - self._esc_pos} unused escape values "
                               "(decoded with other indexes/tables than it was encoded with, or corrupt)")
        if not _call(self._coder.is_empty):
            raise DivergenceError("coded data was not fully consumed (decoded with other indexes/tables than it "
                               "was encoded with, or corrupt)")


def encode(symbols, indexes, tables: CdfTables) -> bytes:
    """Encode integer ``symbols`` (numpy or torch) with per-symbol table ``indexes`` (an array of the same shape, or
    one int / ``None`` for a single shared table). Returns self-delimiting, CRC-checked bytes."""
    enc = Encoder(tables)
    enc.encode(symbols, indexes)
    return enc.finish()


def max_symbols(tables: CdfTables, n_words: int) -> int:
    """The most symbols ``n_words`` ANS words can hold under ``tables`` (see the module notes): the bound a
    stream's symbol count, and any geometry that asks for symbols, must meet."""
    import math

    p_max = tables._cache.get("p_max")
    if p_max is None:
        p_max = max(int(tables.frequencies(k).max()) for k in range(tables.num_tables)) / (1 << tables.precision)
        tables._cache["p_max"] = p_max
    if p_max >= 1.0:
        return 1 << 62
    min_bits = -math.log2(p_max)
    return int((32 * n_words + 96) / (0.99 * min_bits)) + 1


def stream_symbols(data) -> int | None:
    """The symbol count a coded stream announces (None for version 1 streams, which have none), read without
    decoding; raises EntropyError for data that is not a coded stream."""
    data = bytes(data)
    if len(data) < 5 or data[0] not in READ_VERSIONS:
        raise EntropyError("not a coded stream (bad header)")
    return read_varint(data, 5)[0] if data[0] >= 2 else None


def decode(data, indexes, tables: CdfTables, shape=None) -> np.ndarray:
    """Inverse of :func:`encode`: ``indexes`` as given to encode (with ``shape`` when it is one shared int)."""
    dec = Decoder(data, tables)
    out = dec.decode(indexes, shape=shape)
    dec.finish()
    return out
