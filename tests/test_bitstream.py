"""The container format: round trips, golden bytes, validation, fuzzing, safe file writes."""

import dataclasses
import importlib.util
import random
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from codec.bitstream import (
    BitstreamError, Header, Payload, check_checkpoint, pack, read_file, symbols_checksum, unpack, verify_symbols,
    write_file,
)
from codec.entropy import EntropyError, decode

GOLDEN = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


def sample_header(**kw):
    base = dict(codec="image/test", model="m1", modality="audio",
                geometry={"samples": 48000, "channels": 2, "sample_rate": 48000},
                checkpoint_fingerprint=b"\x11" * 16, table_fingerprint=b"\x22" * 16, symbols_checksum=b"\x33" * 8)
    base.update(kw)
    return Header(**base)


def test_roundtrip():
    h = sample_header()
    p = Payload(streams={"tokens": b"abc" * 100, "empty": b""}, ints={"frames": (150,), "shape": (2, 3, -4)})
    h2, p2 = unpack(pack(h, p))
    assert dataclasses.replace(h2, symbols_checksum=h.symbols_checksum, bound=None) == h
    assert p2.matches(h.symbols_checksum) and not p2.matches(b"\x34" * 8)
    assert p2.streams == p.streams and p2.ints == p.ints


def test_checksum_covers_the_header():
    """Format 3: the stored checksum binds every header field to the symbols, so a header altered with its CRC
    recomputed no longer matches the symbols it decodes to."""
    h = sample_header()
    data = bytearray(pack(h, Payload(streams={"s": b"x" * 10})))
    i = data.index(b"\x07samples") + 8
    data[i:i + 8] = struct.pack("<q", 2**34)
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    h2, p2 = unpack(bytes(data))
    assert h2.geometry["samples"] == 2**34
    assert not p2.matches(h.symbols_checksum)


def test_golden_bytes_unchanged_and_decodable():
    assert make_golden.golden_entropy_bytes() == (GOLDEN / "entropy_v2.bin").read_bytes(), \
        "entropy stream format changed: bump FORMAT_VERSION and regenerate tests/golden deliberately"
    assert make_golden.golden_container_bytes() == (GOLDEN / "container_v3.cdc").read_bytes(), \
        "container format changed: bump FORMAT_VERSION and regenerate tests/golden deliberately"
    tables, idx, vals = make_golden.golden_inputs()
    for name in ("container_v3.cdc", "container_v2.cdc"):  # the current format and codec 0.1's
        header, payload = read_file(GOLDEN / name)
        assert header.table_fingerprint == tables.fingerprint_bytes
        out = decode(payload.streams["y"], idx, tables)
        assert np.array_equal(out, vals)
        verify_symbols(header, out)
        with pytest.raises(BitstreamError, match="diverged"):
            verify_symbols(header, out + (out == 0))


def test_older_container_version_is_refused_naming_it():
    """A file of container version 1 (float hyper-decoders, not portable) is refused with its version named, not
    decoded and not called corrupt."""
    old = (GOLDEN / "container_v1.cdc").read_bytes()
    assert struct.unpack_from("<H", old, 4)[0] == 1
    with pytest.raises(BitstreamError, match=r"format version 1 .*re-encode"):
        unpack(old)
    newer = bytearray((GOLDEN / "container_v3.cdc").read_bytes())
    newer[4:6] = struct.pack("<H", 9)
    newer[-4:] = struct.pack("<I", zlib.crc32(bytes(newer[:-4])))
    with pytest.raises(BitstreamError, match="newer codec"):
        unpack(bytes(newer))


def test_divergence_is_not_corruption():
    """Intact bytes decoded with other indexes than the encoder's: DivergenceError (names the likely causes);
    a flipped byte: plain corruption (CRC)."""
    from codec.errors import DivergenceError

    tables, idx, vals = make_golden.golden_inputs()
    data = (GOLDEN / "entropy_v2.bin").read_bytes()
    wrong = idx.copy()
    wrong[:8] = (wrong[:8] + 1) % 3
    with pytest.raises(DivergenceError):
        decode(data, wrong, tables)
    bad = bytearray(data)
    bad[-3] ^= 0x40
    with pytest.raises(EntropyError, match="CRC") as e:
        decode(bytes(bad), idx, tables)
    assert not isinstance(e.value, DivergenceError)
    h = sample_header(symbols_checksum=symbols_checksum(vals))
    with pytest.raises(DivergenceError, match="diverged from the encoder.*different model.*platform"):
        verify_symbols(h, vals + 1)


def test_pack_rejects_bad_fields():
    with pytest.raises(BitstreamError, match="geometry is missing"):
        pack(sample_header(geometry={"samples": 3}), Payload())
    with pytest.raises(BitstreamError, match="modality"):
        pack(sample_header(modality="smell"), Payload())
    with pytest.raises(BitstreamError, match="stream name"):
        pack(sample_header(), Payload(streams={"bad name!": b""}))
    with pytest.raises(BitstreamError, match="non-negative"):
        pack(sample_header(geometry={"samples": -1, "channels": 1, "sample_rate": 8000}), Payload())


def test_checkpoint_and_symbols_checks():
    h = sample_header()
    check_checkpoint(h, "image/test", b"\x11" * 16)
    with pytest.raises(BitstreamError, match="needs checkpoint 'm1'"):
        check_checkpoint(h, "image/test", b"\x12" * 16, model="m2")
    with pytest.raises(BitstreamError, match="made by codec"):
        check_checkpoint(h, "audio/other", b"\x11" * 16)
    a = np.arange(10)
    h = sample_header(symbols_checksum=symbols_checksum(a))
    verify_symbols(h, a)
    with pytest.raises(BitstreamError, match="diverged"):
        verify_symbols(h, a + (a == 3))


def test_hostile_headers_with_valid_crc():
    """Fields that lie (huge lengths, counts, values) are refused without allocating what they announce."""
    good = pack(sample_header(), Payload(streams={"s": b"x" * 10}))

    def refix(b: bytearray) -> bytes:
        return bytes(b[:-4]) + struct.pack("<I", zlib.crc32(bytes(b[:-4])))

    b = bytearray(good)
    b[6:10] = struct.pack("<I", 0xFFFFFFFF)  # header length
    with pytest.raises(BitstreamError, match="header length"):
        unpack(refix(b))
    i = good.index(b"\x01s") + 2  # stream 's' length field
    b = bytearray(good)
    b[i:i + 8] = struct.pack("<Q", 2**63)
    with pytest.raises(BitstreamError, match="streams announce"):
        unpack(refix(b))
    with pytest.raises(BitstreamError, match="magic"):
        unpack(b"GIF89a" + good[6:])
    with pytest.raises(BitstreamError, match="shorter"):
        unpack(b"")


def _fuzz(seed: int, iterations: int, fix_crc: bool):
    rng = random.Random(seed)
    tables, idx, vals = make_golden.golden_inputs()
    base = (GOLDEN / "container_v3.cdc").read_bytes()
    outcomes = {"error": 0, "ok": 0}
    for _ in range(iterations):
        b = bytearray(base)
        op = rng.random()
        if op < 0.4:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.7:
            del b[rng.randrange(len(b)):]
        elif op < 0.85:
            pos = rng.randrange(len(b))
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            pos = rng.randrange(len(b))
            del b[pos:pos + rng.randint(1, 8)]
        if fix_crc and len(b) >= 4:
            b = bytearray(b[:-4] + struct.pack("<I", zlib.crc32(bytes(b[:-4]))))
        try:
            header, payload = unpack(bytes(b))
            y = payload.streams.get("y")
            if y is not None:
                out = decode(y, idx, tables)
                assert out.shape == vals.shape and out.dtype == np.int32
            outcomes["ok"] += 1
        except (BitstreamError, EntropyError):
            outcomes["error"] += 1
    return outcomes


@pytest.mark.parametrize("fix_crc", [False, True])
def test_fuzz_mutations_and_truncations(fix_crc):
    """Thousands of mutated / truncated files: each gives a clean exception or a valid result, never a crash or a
    hang (SIGALRM fails the test if a case hangs)."""
    def on_alarm(*_):
        raise AssertionError("fuzz case hung")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120)
    try:
        out = _fuzz(seed=1234 + fix_crc, iterations=3000, fix_crc=fix_crc)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert out["error"] > 1000  # the mutations are really exercised
    assert sum(out.values()) == 3000


def test_write_file_never_overwrites(tmp_path):
    p = tmp_path / "a.cdc"
    p.write_bytes(b"user data")
    h, pl = sample_header(), Payload(streams={"s": b"1"})
    with pytest.raises(BitstreamError, match="exists"):
        write_file(p, h, pl)
    assert p.read_bytes() == b"user data"
    write_file(p, h, pl, force=True)
    assert unpack(p.read_bytes())[1].matches(h.symbols_checksum)
    assert not list(tmp_path.glob(".*tmp"))
    with pytest.raises(BitstreamError, match="no such file"):
        read_file(tmp_path / "missing.cdc")
