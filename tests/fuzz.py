"""Structure-aware fuzzing of the decoder: valid containers of every modality and shipped model family, mutated
field by field and byte by byte, decoded under an address-space limit and a per-case time limit.

    python tests/fuzz.py --cases 10000 --seed 0          # the long form (tests/test_hostile.py runs a short one)

Seeds (small real inputs, one per shipped family, plus a 3-channel file coded in channel groups): msh (mean-scale
hyperprior), walloc-rgb16x, rvqgan-speech16k, rvqgan-music24k-stereo, walloc-stereo and video-msh; and two files
of codec 0.1's container format 2 (still read; their coded streams carry no symbol count).

Mutations, each on a re-serialised container whose CRC-32 (and, where a stream is touched, that coded stream's
CRC) is recomputed, so that they reach the decoder instead of stopping at a checksum:
  - geometry and integer entries: boundary and outsized values (0, 1, v +- 1, 2v, 1000v, 2**31, 2**34, 2**48 ...),
    removed or added keys;
  - header fields: modality, codec and model names, fingerprints, format version;
  - stream lengths: bytes moved between streams, or one length changed;
  - small integers inside coded streams (symbol count, escape and word counts) and video segment lengths;
  - raw bytes: flips, truncation, insertion (with and without the CRC recomputed).
Half of the cases also recompute the header checksum from the original symbols (a forger who decoded the file):
then nothing but the structural checks stands between the header and the allocator.

Outcome per case: ``refused`` (a CodecError: one clear line), ``same`` (decoded to exactly the original output),
``consistent`` (only for forged checksums, and for format-2 files, whose checksum covers the symbols only:
decoded to an output of the geometry its header states, which is what such a file says), or a failure: ``traceback`` (any other exception, MemoryError included), ``hang`` (over
the time limit), ``wrong`` (decoded without error to another output, or to a shape its header does not state).
Peak memory is bounded by the address-space limit (RLIMIT_AS) set after the models are loaded: the process may
grow by at most ``--memory-mib`` while it decodes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import signal
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from codec.entropy.coder import write_varint

ROOT = Path(__file__).resolve().parent.parent
GEOMETRY_VALUES = (0, 1, 2, 3, 255, 2**16, 2**24, 2**31 - 1, 2**31, 2**32, 2**34, 2**40, 2**48, 2**63 - 1, -1,
                   -(2**63))


# --------------------------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------------------------
def seeds() -> dict:
    """name -> (container bytes, symbols checksum): small real inputs through every shipped family."""
    from codec.api import encode_audio, encode_image, encode_video
    from codec.config import data_path
    from codec.media import Video, load_audio, load_image, load_video

    img = load_image(ROOT / "docs" / "sample" / "kodim23.png")[200:264, 300:372]
    speech, ssr = load_audio(data_path("audio", "speech", "fsdd", "recordings", "0_george_0.wav"))
    music, msr = load_audio(data_path("audio", "music", "librosa",
                                      "456440__inspectorj__bird-whistling-robin-single-13.hq.ogg"))
    vid = load_video(data_path("video", "raw", "park_joy_480x270_50fps_10f.y4m"), max_frames=2)
    vid = Video(vid.y[:, :48, :64].copy(), vid.u[:, :24, :32].copy(), vid.v[:, :24, :32].copy(), 50, 1)
    speech, music = speech[: ssr // 4], music[: msr // 5]
    three = np.concatenate([music, music[:, :1] * 0.5], 1)
    made = {
        "msh": lambda: encode_image(img, "msh-q1"),
        "walloc-rgb16x": lambda: encode_image(img, "walloc-rgb16x"),
        "rvqgan-speech16k": lambda: encode_audio(speech, ssr, "rvqgan-speech16k", kbps=3, sample_format="PCM_16"),
        "rvqgan-music24k-stereo": lambda: encode_audio(music, msr, "rvqgan-music24k-stereo"),
        "walloc-stereo": lambda: encode_audio(music, msr, "walloc-stereo"),
        "rvqgan-3ch-groups": lambda: encode_audio(three, msr, "rvqgan-music24k-stereo", kbps=2),
        "video-msh": lambda: encode_video(vid, "video-msh-q1"),
    }
    old = ROOT / "tests" / "golden" / "shipped" / "v2"  # codec 0.1's format 2, still read (no symbol counts)
    made["v2-rvqgan-speech16k"] = lambda: (old / "rvqgan-speech16k.cdc").read_bytes()
    made["v2-rvqgan-music24k-stereo"] = lambda: (old / "rvqgan-music24k-stereo.cdc").read_bytes()
    out = {}
    for name, enc in made.items():
        data = enc()
        out[name] = (data, _symbols_digest(data))
    return out


def _symbols_digest(data: bytes) -> bytes:
    """The symbols checksum of a valid file (what a forger who decoded it knows): decode with a hasher hook."""
    import codec.bitstream as bs

    seen = []
    orig = bs.checksum_matches

    def spy(stored, bound, digest):
        seen.append(digest)
        return orig(stored, bound, digest)

    bs.checksum_matches = spy
    try:
        _decode(data)
    finally:
        bs.checksum_matches = orig
    return seen[-1]


def _decode(data: bytes):
    from codec.api import decode

    return decode(data)


# --------------------------------------------------------------------------------------------------------------
# the container as editable fields
# --------------------------------------------------------------------------------------------------------------
def parse(data: bytes) -> dict:
    from codec.bitstream import unpack

    header, payload = unpack(data)
    return {"version": header.version, "codec": header.codec.encode(), "model": header.model.encode(),
            "ckpt": header.checkpoint_fingerprint, "table": header.table_fingerprint,
            "checksum": header.symbols_checksum, "modality": ("image", "audio", "video", "data").index(header.modality),
            "geometry": [[k.encode(), v] for k, v in header.geometry.items()],
            "ints": [[k.encode(), list(v)] for k, v in payload.ints.items()],
            "streams": [[k.encode(), bytes(v)] for k, v in payload.streams.items()], "lengths": None}


def serialise(f: dict, digest: bytes | None) -> bytes:
    """Container bytes of the fields as they are (no validation); the CRC always recomputed, the header checksum
    recomputed from ``digest`` when given (format 3)."""
    from codec.bitstream import bind_checksum

    def s8(b):
        return bytes([len(b) & 0xFF]) + b

    hb = [s8(f["codec"]), s8(f["model"]), f["ckpt"], f["table"]]
    at = sum(map(len, hb))
    hb.append(f["checksum"])
    hb.append(struct.pack("<BB", f["modality"] & 0xFF, len(f["geometry"]) & 0xFF))
    for k, v in f["geometry"]:
        hb.append(s8(k) + struct.pack("<q", _i64(v)))
    hb.append(struct.pack("<B", len(f["ints"]) & 0xFF))
    for k, vals in f["ints"]:
        hb.append(s8(k) + struct.pack(f"<B{len(vals)}q", len(vals) & 0xFF, *map(_i64, vals)))
    hb.append(struct.pack("<B", len(f["streams"]) & 0xFF))
    lengths = f["lengths"] or [len(b) for _, b in f["streams"]]
    for (k, _), n in zip(f["streams"], lengths):
        hb.append(s8(k) + struct.pack("<Q", n % 2**64))
    head = b"".join(hb)
    prefix = b"\x89CDC" + struct.pack("<HI", f["version"], len(head))
    out = bytearray(prefix + head + b"".join(b for _, b in f["streams"]))
    if digest is not None and f["version"] >= 3:
        at += len(prefix)
        bound = bytes(out[:at]) + bytes(8) + bytes(out[at + 8: len(prefix) + len(head)])
        out[at: at + 8] = bind_checksum(bound, digest)
    return bytes(out) + struct.pack("<I", zlib.crc32(bytes(out)))


def _i64(v: int) -> int:
    v = int(v) % 2**64
    return v - 2**64 if v >= 2**63 else v


def _fix_stream_crc(b: bytes) -> bytes:
    """A coded stream (codec.entropy) with its CRC recomputed, when it looks like one."""
    if len(b) >= 5 and b[0] in (1, 2):
        return b[:1] + struct.pack("<I", zlib.crc32(b[5:])) + b[5:]
    return b


def _varints(b: bytes, start: int, count: int) -> list[tuple[int, int, int]]:
    """(position, byte length, value) of up to ``count`` LEB128 varints from ``start``."""
    from codec.entropy.coder import read_varint
    from codec.errors import EntropyError

    out, pos = [], start
    for _ in range(count):
        try:
            v, nxt = read_varint(b, pos)
        except EntropyError:
            break
        out.append((pos, nxt - pos, v))
        pos = nxt
    return out


def _value(rng: random.Random, v: int) -> int:
    choices = list(GEOMETRY_VALUES) + [v + 1, v - 1, 2 * v, v // 2, 1000 * v, v + rng.randrange(1, 64)]
    return rng.choice(choices)


def mutate(rng: random.Random, data: bytes) -> tuple[str, dict | bytes]:
    """One mutation: (kind, fields) for structured ones, (kind, bytes) for raw ones."""
    f = parse(data)
    kind = rng.choice(["geometry", "geometry", "ints", "ints", "geometry+ints", "keys", "header", "lengths",
                       "inner", "inner", "raw", "raw-crc"])
    if kind == "geometry":
        g = rng.choice(f["geometry"])
        g[1] = _value(rng, g[1])
    elif kind == "ints" and f["ints"]:
        e = rng.choice(f["ints"])
        i = rng.randrange(len(e[1]))
        e[1][i] = _value(rng, e[1][i])
    elif kind == "geometry+ints":  # consistent lies: the geometry and the payload's size scaled together
        factor = rng.choice([2, 3, 10, 1000, 2**20])
        for g in f["geometry"]:
            if g[0] in (b"samples", b"height", b"width", b"frames"):
                g[1] *= factor
        for e in f["ints"]:
            if e[0].split(b".")[0] == b"size":
                e[1] = [v * factor for v in e[1]]
    elif kind == "keys":
        op = rng.random()
        if op < 0.4 and f["geometry"]:
            f["geometry"].pop(rng.randrange(len(f["geometry"])))
        elif op < 0.7:
            f["geometry"].append([rng.choice([b"sample_format", b"channels", b"extra"]), rng.choice(GEOMETRY_VALUES)])
        elif f["ints"]:
            f["ints"].pop(rng.randrange(len(f["ints"])))
    elif kind == "header":
        op = rng.randrange(6)
        if op == 0:
            f["modality"] = rng.randrange(5)
        elif op == 1:
            f["codec"] = bytes(rng.choice([b"image/walloc", b"rvqgan", b"", b"x" * 64]))
        elif op == 2:
            f["model"] = rng.choice([b"msh-q4", b"rvqgan-speech16k", b"video-msh-q1", b"walloc-stereo", b"nope",
                                     b"../../etc/passwd", b""])
        elif op == 3:
            fp = bytearray(f["ckpt"])
            fp[rng.randrange(16)] ^= 1 << rng.randrange(8)
            f["ckpt"] = bytes(fp)
        elif op == 4:
            f["version"] = rng.choice([1, 2, 4, 65535])
        else:
            fp = bytearray(f["table"])
            fp[rng.randrange(16)] ^= 1
            f["table"] = bytes(fp)
    elif kind == "lengths":
        n = [len(b) for _, b in f["streams"]]
        i = rng.randrange(len(n))
        if len(n) > 1 and rng.random() < 0.6:
            j = (i + 1) % len(n)
            d = rng.randint(-n[i], n[j])
            n[i] += d
            n[j] -= d
        else:
            n[i] = _value(rng, n[i]) % 2**64
        f["lengths"] = n
    elif kind == "inner":  # small integers inside a coded stream (or a video segment's length), its CRC recomputed
        s = rng.choice(f["streams"])
        b = bytearray(s[1])
        if s[0] == b"segments":
            pos = _varints(b, 0, 1)
            if pos:
                p, n, old = pos[0]
                b[p:p + n] = write_varint(max(0, _value(rng, old)) % 2**40)
            s[1] = bytes(b)
        elif len(b) >= 6 and b[0] in (1, 2):
            fields = _varints(b, 5, 3 if b[0] == 2 else 2)
            if fields:
                p, n, old = rng.choice(fields)
                b[p:p + n] = write_varint(max(0, _value(rng, old)) % 2**56)
            s[1] = _fix_stream_crc(bytes(b))
        elif b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            s[1] = bytes(b)
    else:
        b = bytearray(data)
        op = rng.random()
        if op < 0.5:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op < 0.75:
            del b[rng.randrange(1, len(b)):]
        else:
            p = rng.randrange(len(b))
            b[p:p] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        if kind == "raw-crc" and len(b) > 4:
            b = b[:-4] + struct.pack("<I", zlib.crc32(bytes(b[:-4])))
        return kind, bytes(b)
    return kind, f


# --------------------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return isinstance(b, tuple) and a[1] == b[1] and np.array_equal(a[0], b[0])
    if hasattr(a, "y"):
        return hasattr(b, "y") and all(np.array_equal(getattr(a, k), getattr(b, k)) for k in "yuv")
    return isinstance(b, np.ndarray) and np.array_equal(a, b)


def _consistent(out, data: bytes) -> bool:
    """A decoded output has the shape its (forged but checksum-valid) header states."""
    from codec.bitstream import unpack

    g = unpack(data)[0].geometry
    if isinstance(out, tuple):
        return out[0].shape == (g["samples"], g["channels"]) and out[1] == g["sample_rate"]
    if hasattr(out, "y"):
        return out.y.shape == (g["frames"], g["height"], g["width"])
    return out.shape == (g["height"], g["width"], 3)


def run(cases: int, seed: int, memory_mib: int, timeout_s: int, log=None) -> dict:
    import torch

    from codec.errors import CodecError

    torch.set_num_threads(1)
    base = seeds()
    refs = {k: _decode(d) for k, (d, _) in base.items()}
    for name in ("msh-q4", "rvqgan-speech16k", "video-msh-q1", "walloc-stereo"):  # models a mutated name may ask for
        from codec.checkpoints import load_model

        load_model(name, None, {"msh-q4": "image", "video-msh-q1": "video"}.get(name, "audio"))
    vm = _vm_bytes()
    limit = vm + memory_mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(seed)
    names = sorted(base)
    counts: dict = {}
    reasons: dict = {}
    failures = []
    t0 = time.perf_counter()
    for i in range(cases):
        name = names[i % len(names)]
        data, digest = base[name]
        kind, m = mutate(rng, data)
        forged = isinstance(m, dict) and rng.random() < 0.5
        blob = m if isinstance(m, bytes) else serialise(m, digest if forged else None)
        signal.alarm(timeout_s)
        try:
            out = _decode(blob)
            if _same(refs[name], out):
                outcome = "same"
            elif (forged or name.startswith("v2-")) and _consistent(out, blob):
                outcome = "consistent"
            else:
                outcome = "wrong"
        except CodecError as e:
            outcome = "refused"
            msg = str(e)
            key = re.sub(r"[0-9]+", "N", msg)[:70]
            reasons[key] = reasons.get(key, 0) + 1
            if "\n" in msg or not msg:
                outcome, m = "traceback", f"CodecError message is not one line: {msg!r}"
        except _Timeout:
            outcome = "hang"
        except BaseException as e:  # noqa: BLE001 - anything else is a failure, memory errors included
            if isinstance(e, KeyboardInterrupt):
                raise
            outcome, m = "traceback", f"{type(e).__name__}: {str(e)[:200]}"
        finally:
            signal.alarm(0)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome in ("traceback", "hang", "wrong"):
            failures.append({"case": i, "seed": name, "kind": kind, "outcome": outcome,
                             "detail": m if isinstance(m, str) else ""})
            if log:
                print(json.dumps(failures[-1]), file=log, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"cases": cases, "seed": seed, "outcomes": counts, "failures": failures[:50],
            "n_failures": len(failures), "seconds": round(time.perf_counter() - t0, 1),
            "baseline_vm_mib": vm >> 20, "address_space_limit_mib": limit >> 20, "memory_bound_mib": memory_mib,
            "peak_rss_mib": peak >> 20, "seeds": {k: len(d) for k, (d, _) in base.items()},
            "top_refusals": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:25])}


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-mib", type=int, default=1024, help="how much the address space may grow while decoding")
    p.add_argument("--timeout", type=int, default=30, help="seconds per case before it counts as a hang")
    p.add_argument("--json", help="write the summary here")
    a = p.parse_args(argv)
    r = run(a.cases, a.seed, a.memory_mib, a.timeout, log=sys.stderr)
    text = json.dumps(r, indent=1)
    if a.json:
        Path(a.json).write_text(text + "\n")
    print(text)
    return 1 if r["n_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
