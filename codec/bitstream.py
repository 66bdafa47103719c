"""The bitstream container: one self-describing file format for every modality (``.cdc``).

Layout (all integers little-endian; ``str8`` = u8 byte length + UTF-8 bytes)::

    offset  size  field
    0       4     magic  b"\\x89CDC"
    4       2     u16 format version (= 3; version 2, written by codec 0.1, is still read; version 1 files came
                  from builds whose hyper-decoder ran in float and did not decode portably, and are refused
                  with a message naming their version)
    6       4     u32 H: length of the header block (at most 65536)
    10      H     header block:
                    str8   codec name (1..64 bytes, e.g. "image/mean-scale-hyperprior")
                    str8   model / checkpoint name (0..64 bytes)
                    16     checkpoint fingerprint
                    16     entropy-table fingerprint (CdfTables.fingerprint_bytes)
                    8      checksum: BLAKE2b-64 over the whole prefix and header block (this field read as
                           zeros) and the checksum of the quantised symbols (see bind_checksum); format 2
                           stored the symbols checksum alone
                    u8     modality: 0 image, 1 audio, 2 video, 3 data
                    u8     G, then G x (str8 name, i64 value)      original geometry
                    u8     I, then I x (str8 name, u8 n, n x i64)  small integers the decoder needs (shapes)
                    u8     S, then S x (str8 name, u64 length)     named streams
    10+H    ...   the S streams' bytes, in header order
    end-4   4     u32 CRC-32 of every byte before it

Geometry keys required per modality: image ``height, width, channels``; audio ``samples, channels,
sample_rate``; video ``frames, height, width, channels, fps_num, fps_den``; data: none. Names are ASCII
``[A-Za-z0-9_./-]``, at most 64 bytes, unique within their list.

Reading never trusts the header: the CRC is checked first, then every field is bounds-checked against the bytes
actually present before it is used, counts and sizes are capped (no size field can cause a large allocation: the
largest thing built is a slice of the input), and the stream lengths must add up to the file exactly. Any failure
raises :class:`~codec.errors.BitstreamError` with a message naming the problem.

The checksum binds the header to the symbols: geometry, integer entries, names and stream lengths are covered
together with what the entropy decoder produced, so a header that was altered (even with its CRC recomputed)
decodes to an error, never to an output of another size. What a decoder allocates is bounded before the checksum
can be checked: each codec checks the geometry against what the model produces and against the symbol counts its
coded streams announce (:func:`codec.entropy.coder.stream_symbols`) before it decodes anything.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.errors import BitstreamError, DivergenceError

MAGIC = b"\x89CDC"
FORMAT_VERSION = 3
#: older versions this build still reads (their checksum covers the symbols only)
READ_VERSIONS = (2, 3)
#: what each older container version was, for the refusal message
OLD_VERSIONS = {1: "codec 0.1, whose image and video entropy parameters came from float networks and did not decode "
                   "portably across machines"}
MAX_HEADER = 1 << 16
MAX_NAME = 64
MAX_ITEMS = 64
MAX_INT_TUPLE = 16
MAX_VALUE = 1 << 48  # geometry values and payload integers are bounded by this in magnitude
_PREFIX = struct.Struct("<4sHI")
MODALITIES = ("image", "audio", "video", "data")
REQUIRED_GEOMETRY = {
    "image": ("height", "width", "channels"),
    "audio": ("samples", "channels", "sample_rate"),
    "video": ("frames", "height", "width", "channels", "fps_num", "fps_den"),
    "data": (),
}
#: geometry limits every reader applies (before a model is loaded)
MAX_AUDIO_CHANNELS = 64
MAX_SAMPLE_RATE = 384000
_NAME_RE = re.compile(r"^[A-Za-z0-9_./-]+$")


class SymbolsHasher:
    """Incremental :func:`symbols_checksum`: ``update(a)`` per array in coding order, then ``digest()``. Streaming
    coders (video, one frame at a time) use it so the symbols never need to be held all at once."""

    def __init__(self):
        self._h = hashlib.blake2b(digest_size=8)

    def update(self, a) -> None:
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        a = np.asarray(a)
        if a.dtype.kind not in "iu":
            raise BitstreamError(f"symbols must be integers, got {a.dtype}")
        self._h.update(struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape))
        self._h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())

    def digest(self) -> bytes:
        return self._h.digest()


def symbols_checksum(*arrays) -> bytes:
    """BLAKE2b-64 of the quantised symbols (shape and int32 little-endian values of each array, in order).

    Encoders store it in the header; decoders recompute it on what they decoded and call :func:`verify_symbols`,
    so a decode that diverged (e.g. hyper-decoder float differences across platforms) is an error, never a
    silently wrong output.
    """
    h = SymbolsHasher()
    for a in arrays:
        h.update(a)
    return h.digest()


def bind_checksum(bound: bytes, symbols_digest: bytes) -> bytes:
    """The format-3 header checksum: BLAKE2b-64 of the header bytes it covers and the symbols checksum."""
    return hashlib.blake2b(b"codec-container-3\0" + bound + symbols_digest, digest_size=8).digest()


def checksum_matches(stored: bytes | None, bound: bytes | None, symbols_digest: bytes) -> bool:
    """Whether decoded symbols (their :func:`symbols_checksum`) agree with a file's stored checksum; ``bound`` is
    the header bytes a format-3 checksum covers (None: a format-2 file, symbols only; ``stored`` None: nothing to
    check)."""
    if stored is None:
        return True
    return (symbols_digest if bound is None else bind_checksum(bound, symbols_digest)) == stored


@dataclass(frozen=True)
class Header:
    codec: str
    modality: str
    geometry: dict
    model: str = ""
    checkpoint_fingerprint: bytes = bytes(16)
    table_fingerprint: bytes = bytes(16)
    #: as given to :func:`pack`: the symbols checksum; as read by :func:`unpack`: the stored checksum (format 3:
    #: bound to ``bound``, the header bytes it covers)
    symbols_checksum: bytes = bytes(8)
    bound: bytes | None = None
    version: int = FORMAT_VERSION

    def describe(self) -> dict:
        return {"codec": self.codec, "model": self.model, "modality": self.modality, "geometry": dict(self.geometry),
                "checkpoint_fingerprint": self.checkpoint_fingerprint.hex(),
                "table_fingerprint": self.table_fingerprint.hex(), "checksum": self.symbols_checksum.hex(),
                "format_version": self.version}


@dataclass(frozen=True)
class Payload:
    """What a codec's ``compress`` returns: named byte streams, the small integers needed to decode, and the
    checksum of the quantised symbols (:func:`symbols_checksum`; the container's header carries it)."""

    streams: dict = field(default_factory=dict)
    ints: dict = field(default_factory=dict)
    checksum: bytes | None = None
    #: the container header's geometry (frames, sizes): set by the codec on encode, by the container on decode;
    #: not serialised in the payload
    meta: dict = field(default_factory=dict)
    #: on decode, the header bytes the stored checksum covers besides the symbols (None: format 2, symbols only)
    bound: bytes | None = None

    def matches(self, symbols_digest: bytes) -> bool:
        """Whether decoded symbols (their :func:`symbols_checksum`) agree with the stored checksum."""
        return checksum_matches(self.checksum, self.bound, symbols_digest)

    @property
    def num_bytes(self) -> int:
        return sum(len(v) for v in self.streams.values())


DIVERGED = ("the decoder diverged from the encoder: the file's bytes are intact (CRC checked) but decoding them does "
            "not reproduce the encoder's symbols ({detail}). Likely cause: the file was made with a different model "
            "or build than this one, or on a platform whose arithmetic differs in a part that is not exact")


def verify_symbols(header: Header, *arrays) -> None:
    if not checksum_matches(header.symbols_checksum, header.bound, symbols_checksum(*arrays)):
        raise DivergenceError(DIVERGED.format(detail="symbols checksum mismatch"))


def check_checkpoint(header: Header, codec: str, checkpoint_fingerprint: bytes, model: str = "") -> None:
    """Raise a clear error when a file was made by another codec or checkpoint than the one loaded."""
    if header.codec != codec:
        raise BitstreamError(f"this file was made by codec {header.codec!r}, not {codec!r}")
    if header.checkpoint_fingerprint != checkpoint_fingerprint:
        need = f"{header.model!r} " if header.model else ""
        raise BitstreamError(f"this file needs checkpoint {need}(fingerprint {header.checkpoint_fingerprint.hex()}); "
                             f"the loaded one{' ' + repr(model) if model else ''} has fingerprint "
                             f"{checkpoint_fingerprint.hex()}")


# --------------------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------------------
def _check_name(name: str, what: str, allow_empty: bool = False) -> bytes:
    if not isinstance(name, str):
        raise BitstreamError(f"{what} must be a string, got {type(name).__name__}")
    b = name.encode("utf-8")
    if len(b) > MAX_NAME or (not b and not allow_empty):
        raise BitstreamError(f"{what} must be 1..{MAX_NAME} bytes, got {len(b)}")
    return b


def _check_key(name: str, what: str) -> bytes:
    b = _check_name(name, what)
    if not _NAME_RE.match(name):
        raise BitstreamError(f"{what} {name!r} must use only letters, digits and _ . / -")
    return b


def _str8(b: bytes) -> bytes:
    return struct.pack("<B", len(b)) + b


def _check_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise BitstreamError(f"{what} must be an int, got {type(v).__name__}")
    v = int(v)
    if abs(v) > MAX_VALUE:
        raise BitstreamError(f"{what} = {v} is out of range (|v| <= 2**48)")
    return v


def _check_header_fields(h: Header) -> None:
    if h.modality not in MODALITIES:
        raise BitstreamError(f"unknown modality {h.modality!r} (one of {', '.join(MODALITIES)})")
    for f, n in (("checkpoint_fingerprint", 16), ("table_fingerprint", 16), ("symbols_checksum", 8)):
        v = getattr(h, f)
        if not isinstance(v, (bytes, bytearray)) or len(v) != n:
            raise BitstreamError(f"{f} must be {n} bytes")
    missing = [k for k in REQUIRED_GEOMETRY[h.modality] if k not in h.geometry]
    if missing:
        raise BitstreamError(f"{h.modality} geometry is missing {', '.join(missing)}")
    for k, v in h.geometry.items():
        if _check_int(v, f"geometry {k!r}") < 0:
            raise BitstreamError(f"geometry {k!r} must be non-negative, got {v}")


def pack(header: Header, payload: Payload) -> bytes:
    """Serialise a header and payload into container bytes."""
    _check_header_fields(header)
    if len(header.geometry) > MAX_ITEMS or len(payload.ints) > MAX_ITEMS or len(payload.streams) > MAX_ITEMS:
        raise BitstreamError(f"at most {MAX_ITEMS} geometry fields, integer entries and streams")
    hb = [_str8(_check_name(header.codec, "codec name")), _str8(_check_name(header.model, "model name", True)),
          bytes(header.checkpoint_fingerprint), bytes(header.table_fingerprint), bytes(header.symbols_checksum),
          struct.pack("<BB", MODALITIES.index(header.modality), len(header.geometry))]
    for k, v in header.geometry.items():
        hb.append(_str8(_check_key(k, "geometry name")) + struct.pack("<q", int(v)))
    hb.append(struct.pack("<B", len(payload.ints)))
    for k, vals in payload.ints.items():
        vals = (vals,) if isinstance(vals, (int, np.integer)) else tuple(vals)
        if len(vals) > MAX_INT_TUPLE:
            raise BitstreamError(f"integer entry {k!r} has {len(vals)} values (at most {MAX_INT_TUPLE})")
        vals = [_check_int(v, f"integer entry {k!r}") for v in vals]
        hb.append(_str8(_check_key(k, "integer entry name")) + struct.pack(f"<B{len(vals)}q", len(vals), *vals))
    hb.append(struct.pack("<B", len(payload.streams)))
    bodies = []
    for k, data in payload.streams.items():
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BitstreamError(f"stream {k!r} must be bytes, got {type(data).__name__}")
        data = bytes(data)
        hb.append(_str8(_check_key(k, "stream name")) + struct.pack("<Q", len(data)))
        bodies.append(data)
    head = b"".join(hb)
    if len(head) > MAX_HEADER:
        raise BitstreamError("header too large")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head))
    at = _PREFIX.size + _checksum_offset(head)
    bound = (prefix + head)[:at] + bytes(8) + (prefix + head)[at + 8:]
    stored = bind_checksum(bound, bytes(header.symbols_checksum))
    out = bound[:at] + stored + bound[at + 8:] + b"".join(bodies)
    return out + struct.pack("<I", zlib.crc32(out))


def _checksum_offset(head: bytes) -> int:
    """Where the checksum field starts in a header block (after the two names and the two fingerprints)."""
    n1 = head[0]
    n2 = head[1 + n1]
    return 2 + n1 + n2 + 32


# --------------------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, buf: bytes, start: int, end: int):
        self.buf, self.pos, self.end = buf, start, end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise BitstreamError(f"header is truncated or corrupt (reading {what})")
        b = self.buf[self.pos: self.pos + n]
        self.pos += n
        return b

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def unpack(self, fmt: str, what: str):
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size, what))

    def name(self, what: str, key: bool = True, allow_empty: bool = False) -> str:
        n = self.u8(what)
        if n > MAX_NAME or (n == 0 and not allow_empty):
            raise BitstreamError(f"header is corrupt ({what} of {n} bytes)")
        raw = self.take(n, what)
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError(f"header is corrupt ({what} is not UTF-8)") from None
        if key and not _NAME_RE.match(s):
            raise BitstreamError(f"header is corrupt ({what} {s!r} has invalid characters)")
        return s


def _bounded(v: int, what: str, lo: int = -MAX_VALUE) -> int:
    if not lo <= v <= MAX_VALUE:
        raise BitstreamError(f"header is corrupt ({what} = {v} out of range)")
    return v


def unpack(data) -> tuple[Header, Payload]:
    """Parse and validate container bytes; raise BitstreamError on anything truncated, corrupt or hostile."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    if len(data) < _PREFIX.size + 4:
        raise BitstreamError(f"not a codec bitstream: {len(data)} bytes is shorter than the smallest valid file")
    magic, version, hlen = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError("not a codec bitstream (bad magic bytes)")
    if version in OLD_VERSIONS:
        raise BitstreamError(f"this file was written in bitstream format version {version} ({OLD_VERSIONS[version]}); "
                             f"this build reads format {FORMAT_VERSION}: re-encode the source with this version")
    if version not in READ_VERSIONS:
        raise BitstreamError(f"bitstream format version {version} is not supported (this build reads "
                             f"{', '.join(map(str, READ_VERSIONS))}); file corrupt or made by a newer codec")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise BitstreamError("bitstream is corrupt or truncated (CRC mismatch)")
    if hlen > MAX_HEADER or _PREFIX.size + hlen > len(data) - 4:
        raise BitstreamError(f"bitstream is corrupt (header length {hlen} does not fit the file)")
    r = _Reader(data, _PREFIX.size, _PREFIX.size + hlen)
    codec = r.name("codec name", key=False)
    model = r.name("model name", key=False, allow_empty=True)
    ckpt_fp = r.take(16, "checkpoint fingerprint")
    table_fp = r.take(16, "table fingerprint")
    sym_sum = r.take(8, "symbols checksum")
    modality_id = r.u8("modality")
    if modality_id >= len(MODALITIES):
        raise BitstreamError(f"bitstream is corrupt (unknown modality {modality_id})")
    modality = MODALITIES[modality_id]

    def count(what):
        n = r.u8(what)
        if n > MAX_ITEMS:
            raise BitstreamError(f"bitstream is corrupt ({n} {what}, at most {MAX_ITEMS})")
        return n

    geometry = {}
    for _ in range(count("geometry fields")):
        k = r.name("geometry name")
        (v,) = r.unpack("<q", f"geometry {k}")
        if k in geometry:
            raise BitstreamError(f"bitstream is corrupt (geometry {k!r} twice)")
        geometry[k] = _bounded(v, f"geometry {k!r}", lo=0)
    missing = [k for k in REQUIRED_GEOMETRY[modality] if k not in geometry]
    if missing:
        raise BitstreamError(f"bitstream is corrupt ({modality} geometry lacks {', '.join(missing)})")
    ints = {}
    for _ in range(count("integer entries")):
        k = r.name("integer entry name")
        n = r.u8(f"integer entry {k}")
        if n > MAX_INT_TUPLE:
            raise BitstreamError(f"bitstream is corrupt (integer entry {k!r} has {n} values)")
        vals = r.unpack(f"<{n}q", f"integer entry {k}")
        if k in ints:
            raise BitstreamError(f"bitstream is corrupt (integer entry {k!r} twice)")
        ints[k] = tuple(_bounded(v, f"integer entry {k!r}") for v in vals)
    specs = []
    for _ in range(count("streams")):
        k = r.name("stream name")
        (n,) = r.unpack("<Q", f"stream {k} length")
        if any(k == s for s, _ in specs):
            raise BitstreamError(f"bitstream is corrupt (stream {k!r} twice)")
        specs.append((k, n))
    if r.pos != r.end:
        raise BitstreamError("bitstream is corrupt (header has trailing bytes)")
    body_start, body_end = r.end, len(data) - 4
    if sum(n for _, n in specs) != body_end - body_start:
        raise BitstreamError(f"bitstream is truncated or corrupt: streams announce {sum(n for _, n in specs)} bytes, "
                             f"the file holds {body_end - body_start}")
    streams, pos = {}, body_start
    for k, n in specs:
        streams[k] = data[pos: pos + n]
        pos += n
    bound = None
    if version >= 3:  # the checksum covers the prefix and the header block, the checksum field read as zeros
        at = _PREFIX.size + _checksum_offset(data[_PREFIX.size: _PREFIX.size + hlen])
        bound = data[:at] + bytes(8) + data[at + 8: _PREFIX.size + hlen]
    header = Header(codec=codec, modality=modality, geometry=geometry, model=model, checkpoint_fingerprint=ckpt_fp,
                    table_fingerprint=table_fp, symbols_checksum=sym_sum, bound=bound, version=version)
    return header, Payload(streams=streams, ints=ints, checksum=sym_sum, meta=dict(geometry), bound=bound)


# --------------------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------------------
MAX_FILE = 1 << 34


def read_file(path) -> tuple[Header, Payload]:
    p = Path(path)
    if not p.exists():
        raise BitstreamError(f"no such file: {p}")
    if not p.is_file():
        raise BitstreamError(f"not a file: {p}")
    if p.stat().st_size > MAX_FILE:
        raise BitstreamError(f"{p} is too large to be a codec bitstream")
    return unpack(p.read_bytes())


def write_file(path, header: Header, payload: Payload, force: bool = False) -> int:
    """Write a container file; never overwrites an existing file unless ``force``. Returns the byte count.

    The bytes go to a temporary file in the same folder first and are renamed into place, so a failed write
    never leaves a half-written output (nor destroys the file it was told to replace)."""
    from codec.config import atomic_write

    data = pack(header, payload)
    atomic_write(path, lambda tmp: tmp.write_bytes(data), force, BitstreamError)
    return len(data)
