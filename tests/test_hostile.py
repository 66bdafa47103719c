"""Hostile and unusual input: forged geometry, decompression bombs, the structure-aware fuzzer, and each rough edge
a new user hit (one clear line with exit code 2 and nothing written, or the right result)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "sample" / "kodim23.png"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz  # noqa: E402

sys.path.pop(0)


def cli(*args, env=None, cwd=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "codec", *map(str, args)], capture_output=True, text=True, env=e,
                          cwd=cwd)


def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert err.startswith("codec: error:") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def forge(data: bytes, digest: bytes, **changes) -> bytes:
    """The container with geometry / integer entries changed, its CRC and header checksum recomputed (a forger who
    decoded the original and knows its symbols checksum)."""
    f = fuzz.parse(data)
    for k, v in changes.items():
        for g in f["geometry"]:
            if g[0] == k.encode():
                g[1] = v
        for e in f["ints"]:
            if e[0] == k.encode():
                e[1] = list(v)
    return fuzz.serialise(f, digest)


@pytest.fixture(scope="module")
def seeds():
    return fuzz.seeds()


# --------------------------------------------------------------------------------------------------------------
# 1. forged geometry is checked against the payload and the model before anything is allocated
# --------------------------------------------------------------------------------------------------------------
def test_forged_audio_geometry_is_refused_before_allocation(seeds):
    from codec.api import decode
    from codec.errors import BitstreamError

    data, digest = seeds["rvqgan-speech16k"]  # 8 kHz speech through the 16 kHz model: size = 2 x samples
    samples = dict((k.decode(), v) for k, v in fuzz.parse(data)["geometry"])["samples"]
    cases = {
        "samples=2**34": (dict(samples=2**34), "code as"),
        "samples=2**34 and size": (dict(samples=2**34, size=(2**35,)), "symbols"),
        "samples=9,600,000": (dict(samples=9_600_000), "code as"),
        "samples=9,600,000 and size": (dict(samples=9_600_000, size=(19_200_000,)), "symbols"),
        "channels=64": (dict(channels=64), "group"),
        "one more hop": (dict(samples=samples + 160, size=(2 * samples + 320,)), "symbols"),
    }
    for what, (change, word) in cases.items():
        with pytest.raises(BitstreamError, match=word):
            decode(forge(data, digest, **change))
    # a length within the last hop is another (shorter) clip the same tokens code: the checksum binds the header
    with pytest.raises(BitstreamError, match="diverged"):
        decode(forge(data, b"\0" * 8, samples=samples - 1, size=(2 * samples - 2,)))


def test_forged_image_and_video_geometry_is_refused(seeds):
    from codec.api import decode
    from codec.errors import BitstreamError

    data, digest = seeds["msh"]
    with pytest.raises(BitstreamError, match="symbols"):
        decode(forge(data, digest, height=8192, width=8192, size=(8192, 8192)))
    with pytest.raises(BitstreamError, match="disagrees"):
        decode(forge(data, digest, height=8192))
    with pytest.raises(BitstreamError, match="Mpixel"):
        decode(forge(data, digest, height=65536, width=65536, size=(65536, 65536)))
    data, digest = seeds["walloc-rgb16x"]
    with pytest.raises(BitstreamError, match="symbols"):
        decode(forge(data, digest, height=4000, width=4000, size=(4000, 4000)))
    data, digest = seeds["video-msh"]
    with pytest.raises(BitstreamError, match="symbols|segment|mode bytes"):
        decode(forge(data, digest, height=2048, width=2048, size=(2048, 2048)))
    f = fuzz.parse(data)
    for g in f["geometry"]:
        if g[0] == b"frames":
            g[1] = 8 * 16
    for s in f["streams"]:
        if s[0] == b"modes":
            s[1] = s[1] + bytes(15)
    with pytest.raises(BitstreamError, match="segment"):
        decode(fuzz.serialise(f, digest))


def test_png_decompression_bomb_is_one_line(tmp_path):
    bomb = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    assert bomb.stat().st_size < 100
    one_line_error(cli("encode", bomb), "100000x100000", "Mpixel")
    assert not (tmp_path / "bomb.cdc").exists()


# --------------------------------------------------------------------------------------------------------------
# 2. the structure-aware fuzzer
# --------------------------------------------------------------------------------------------------------------
def _fuzz(cases: int, seed: int, tmp_path) -> dict:
    out = tmp_path / "fuzz.json"
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz.py"), "--cases", str(cases), "--seed", str(seed),
                        "--memory-mib", "1024", "--json", str(out)], capture_output=True, text=True, timeout=3600)
    assert out.exists(), r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["n_failures"] == 0, res["failures"][:5]
    assert set(res["outcomes"]) <= {"refused", "same", "consistent"}
    assert res["outcomes"].get("refused", 0) > cases // 2 and res["outcomes"].get("same", 0) > 0
    assert len(res["seeds"]) == 9  # every modality and shipped family, channel groups, format 2
    return res


def test_fuzz_short(tmp_path):
    _fuzz(700, 0, tmp_path)


@pytest.mark.slow
def test_fuzz_long(tmp_path):
    _fuzz(10000, 1, tmp_path)


# --------------------------------------------------------------------------------------------------------------
# 3. each rough edge: one line and nothing written, or the right result
# --------------------------------------------------------------------------------------------------------------
def test_small_mistakes_get_one_line_before_torch(tmp_path):
    """Argument and input errors come before any model or framework is loaded (torch is never imported)."""
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "a.cdc").write_bytes((ROOT / "tests" / "golden" / "shipped" / "v3" / "msh-q1.cdc").read_bytes())
    from PIL import Image

    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "other.png")
    cases = [
        (["encode", tmp_path / "missing.png"], "no such file"),
        (["encode", tmp_path / "dir.png"], "is a folder"),
        (["encode", tmp_path / "empty.png"], "is empty"),
        (["encode", SAMPLE, "-o", tmp_path / "fake.png"], "encode writes a codec bitstream"),
        (["encode", SAMPLE, "-o", tmp_path / "x.cdc", "--model", "walloc-rgb16x", "--quality", "4"],
         "single model without quality levels"),
        (["encode", SAMPLE, "-o", tmp_path / "x.cdc", "--model", "msh-q3", "--quality", "4"],
         "--model msh --quality 4"),
        (["encode", SAMPLE, "-o", tmp_path / "x.cdc", "--kbps", "6"], "--kbps applies to audio"),
        (["encode", SAMPLE, "-o", tmp_path / "x.cdc", "--model", "nope"], "unknown model"),
        (["decode", tmp_path / "a.cdc", "-o", tmp_path / "a.wav"], "decode writes image as"),
        (["decode", tmp_path / "a.cdc", "-o", tmp_path / "b.png", "--compare", tmp_path / "missing.png"],
         "no such file (--compare reference)"),
        (["decode", tmp_path / "a.cdc", "-o", tmp_path / "b.png", "--compare", tmp_path / "other.png"],
         "--compare image is 50x40, the decoded one 768x512"),
    ]
    code = ["import io, sys, contextlib; from codec.cli import main; res = []"]
    for args, _ in cases:
        code.append(f"e = io.StringIO()\nwith contextlib.redirect_stderr(e): rc = main({[str(a) for a in args]!r})\n"
                    "res.append((rc, e.getvalue()))")
    code.append("import json; print(json.dumps({'res': res, 'torch': 'torch' in sys.modules}))")
    r = subprocess.run([sys.executable, "-c", "\n".join(code)], capture_output=True, text=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for (args, word), (rc, err) in zip(cases, out["res"]):
        assert rc == 2 and err.count("\n") == 1 and word in err, (args, rc, err)
    assert not out["torch"], "an argument error loaded torch"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.cdc", "dir.png", "empty.png", "other.png"]  # nothing new


def test_version():
    r = cli("--version")
    from codec import __version__
    from codec.bitstream import FORMAT_VERSION

    assert r.returncode == 0 and f"codec {__version__}" in r.stdout and f"format {FORMAT_VERSION}" in r.stdout


def test_info_into_a_closed_pipe_is_quiet(tmp_path):
    f = ROOT / "tests" / "golden" / "shipped" / "v3" / "msh-q1.cdc"
    r = subprocess.run(f"{sys.executable} -m codec info {f} | head -1", shell=True, capture_output=True, text=True)
    assert r.stdout.strip() == "{" and r.stderr == ""


def test_kbps_out_of_range_is_refused(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "s.wav", np.zeros((1600, 1), np.float32), 16000)
    one_line_error(cli("encode", tmp_path / "s.wav", "--kbps", "100"), "above what rvqgan-speech16k-f0 codes",
                   "6.00 kbps")
    one_line_error(cli("encode", tmp_path / "s.wav", "--kbps", "0.1"), "below")
    assert not (tmp_path / "s.cdc").exists()


def test_wrong_yuv_size_is_refused(tmp_path):
    from codec.config import data_path
    from codec.media import load_video

    v = load_video(data_path("video", "raw", "park_joy_480x270_50fps_10f.y4m"), max_frames=4)
    raw = v.i420_bytes()
    (tmp_path / "clip.yuv").write_bytes(raw)
    (tmp_path / "park_480x270.yuv").write_bytes(raw)
    # 240x135 divides the file (4 frames of 480x270 = 16 frames of 240x135 plus chroma rounding) only if it fits
    one_line_error(cli("encode", tmp_path / "park_480x270.yuv", "--size", "240x270", "--fps", "50"),
                   "contradicts the size in the file name")
    r = cli("encode", tmp_path / "clip.yuv", "--size", "270x480", "--fps", "50")
    one_line_error(r, "270x480")
    assert not list(tmp_path.glob("*.cdc"))


def test_multichannel_audio_comes_back_as_it_went_in(tmp_path):
    """Six channels, 24-bit: the default (stereo) model codes three pairs; the mono model six channels. Channel
    count, length and sample format come back; the channels stay distinct."""
    import soundfile as sf

    from codec.api import decode_file, encode_file

    sr, n = 24000, 4800
    t = np.arange(n) / sr
    six = np.stack([0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t) for k in range(6)], 1).astype(np.float32)
    sf.write(tmp_path / "six.wav", six, sr, subtype="PCM_24")
    r = encode_file(tmp_path / "six.wav", tmp_path / "six.cdc")
    assert r["model"] == "rvqgan-music24k-stereo-vocos-gan" and r["channels"] == 6
    decode_file(tmp_path / "six.cdc", tmp_path / "six_out.wav")
    info = sf.info(tmp_path / "six_out.wav")
    assert (info.channels, info.frames, info.samplerate, info.subtype) == (6, n, sr, "PCM_24")
    out, _ = sf.read(tmp_path / "six_out.wav")
    corr = np.corrcoef(out.T)
    assert np.all(np.abs(corr[~np.eye(6, dtype=bool)]) < 0.9)  # not one channel copied six times
    encode_file(tmp_path / "six.wav", tmp_path / "mono.cdc", "rvqgan-speech16k")
    decode_file(tmp_path / "mono.cdc", tmp_path / "mono_out.wav")
    out, _ = sf.read(tmp_path / "mono_out.wav")
    assert out.shape == (n, 6) and np.abs(np.corrcoef(out.T)[0, 5]) < 0.9


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_sample_format_comes_back(tmp_path, subtype):
    import soundfile as sf

    from codec.api import decode_file, encode_file

    sf.write(tmp_path / "a.wav", 0.2 * np.sin(np.arange(8000) / 5)[:, None].astype(np.float32), 16000,
             subtype=subtype)
    encode_file(tmp_path / "a.wav", tmp_path / "a.cdc")
    decode_file(tmp_path / "a.cdc", tmp_path / "b.wav")
    assert sf.info(tmp_path / "b.wav").subtype == subtype


def test_encode_audio_takes_a_path():
    from codec.api import decode, encode_audio
    from codec.config import data_path
    from codec.errors import MediaError

    p = data_path("audio", "speech", "fsdd", "recordings", "0_george_0.wav")
    out, sr = decode(encode_audio(p))
    assert sr == 8000 and out.ndim == 2
    with pytest.raises(MediaError, match="sample rate"):
        encode_audio(p, 16000)
    with pytest.raises(MediaError, match="sample rate"):
        encode_audio(np.zeros(100, np.float32))


def test_compare_on_tiny_and_silent_input_says_na(tmp_path):
    import soundfile as sf
    from PIL import Image

    for name, n in (("one", 1), ("short", 160)):
        sf.write(tmp_path / f"{name}.wav", np.full((n, 1), 0.1, np.float32), 16000)
    sf.write(tmp_path / "silence.wav", np.zeros((16000, 1), np.float32), 16000)
    for name in ("one", "short", "silence"):
        assert cli("encode", tmp_path / f"{name}.wav").returncode == 0
        r = cli("decode", tmp_path / f"{name}.cdc", "-o", tmp_path / f"{name}_out.wav", "--compare",
                tmp_path / f"{name}.wav")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        if name == "silence":
            assert "SI-SDR n/a" in r.stdout and "silent reference" in r.stdout
        else:
            assert "mel distance n/a" in r.stdout and "at least 1025 samples" in r.stdout
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(tmp_path / "tiny.png")
    assert cli("encode", tmp_path / "tiny.png").returncode == 0
    r = cli("decode", tmp_path / "tiny.cdc", "-o", tmp_path / "tiny_out.png", "--compare", tmp_path / "tiny.png")
    assert r.returncode == 0 and "MS-SSIM n/a" in r.stdout and "nan" not in r.stdout


def test_compare_against_a_wrong_reference_writes_nothing(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros((1600, 1), np.float32) + 0.1, 16000)
    sf.write(tmp_path / "b.wav", np.zeros((800, 1), np.float32), 16000)
    assert cli("encode", tmp_path / "a.wav").returncode == 0
    one_line_error(cli("decode", tmp_path / "a.cdc", "-o", tmp_path / "out.wav", "--compare", tmp_path / "b.wav"),
                   "--compare audio")
    one_line_error(cli("decode", tmp_path / "a.cdc", "-o", tmp_path / "out.wav", "--compare", tmp_path / "no.wav"),
                   "no such file")
    assert not (tmp_path / "out.wav").exists()


def test_file_of_replaced_weights_of_a_shipped_model(tmp_path):
    """A file made with other weights under a shipped name (a model retrained since) says so in one line, and decodes
    once that checkpoint lies beside it as NAME.pt."""
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(ROOT / "checkpoints" / "msh-q2.pt", old / "msh-q1.pt")  # other weights, a shipped name
    work = tmp_path / "work"
    work.mkdir()
    assert cli("encode", SAMPLE, "-o", work / "a.cdc", "--model", old / "msh-q1.pt").returncode == 0
    one_line_error(cli("decode", work / "a.cdc", cwd=tmp_path), "other weights of 'msh-q1'", "msh-q1.pt",
                   "--model FILE.pt")
    assert not (work / "a.png").exists()
    shutil.copy(old / "msh-q1.pt", work / "msh-q1.pt")
    r = cli("decode", work / "a.cdc", "-o", work / "b.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_file_of_a_retired_checkpoint_names_the_commit_that_holds_it(tmp_path):
    """A file whose header fingerprint is a retired checkpoint's (the manifest's ``retired`` list, from git history)
    gets the exact ``git show`` command in its one-line error: for replaced weights under a shipped name and for a
    model no longer shipped. The shipped list covers the models this package has replaced or removed."""
    import json

    from codec.checkpoints import load_checkpoint_file, load_manifest

    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(ROOT / "checkpoints" / "msh-q2.pt", own / "msh-q1.pt")  # other weights under a shipped name
    shutil.copy(ROOT / "checkpoints" / "msh-q3.pt", own / "gone.pt")  # a model that is no longer shipped
    work = tmp_path / "work"
    work.mkdir()
    assert cli("encode", SAMPLE, "-o", work / "a.cdc", "--model", own / "msh-q1.pt").returncode == 0
    assert cli("encode", SAMPLE, "-o", work / "b.cdc", "--model", own / "gone.pt").returncode == 0
    fp = {n: load_checkpoint_file(own / f"{n}.pt").fingerprint().hex() for n in ("msh-q1", "gone")}
    listed = tmp_path / "listed"
    listed.mkdir()
    (listed / "manifest.json").write_text(json.dumps({"models": [], "retired": [
        {"name": n, "fingerprint": f, "commit": "abc1234", "file": f"checkpoints/{n}.pt"} for n, f in fp.items()]}))
    env = {"CODEC_CHECKPOINTS": str(listed)}
    one_line_error(cli("decode", work / "a.cdc", cwd=tmp_path, env=env), "other weights of 'msh-q1'",
                   "git show abc1234:checkpoints/msh-q1.pt > msh-q1.pt")
    one_line_error(cli("decode", work / "b.cdc", cwd=tmp_path, env=env), "'gone', which is not a shipped model",
                   "git show abc1234:checkpoints/gone.pt > gone.pt")
    assert not (work / "a.png").exists() and not (work / "b.png").exists()
    # without a record: the general advice, as before
    one_line_error(cli("decode", work / "b.cdc", cwd=tmp_path), "--model gone.pt")

    manifest = load_manifest()
    retired = manifest["retired"]
    names = {r["name"] for r in retired}
    assert {"rvqgan-speech16k-libri", "rvqgan-speech16k-f0", "qres-vae", "msh-q4"} <= names
    assert "rvqgan-speech16k-libri" not in {m["name"] for m in manifest["models"]}
    current = {load_checkpoint_file(ROOT / "checkpoints" / m["file"]).fingerprint().hex()
               for m in manifest["models"] if m["name"].startswith(("rvqgan-speech16k-f0", "msh-q4", "qres-vae"))}
    assert len(current) == 3 and not current & {r["fingerprint"] for r in retired}
    assert all(len(r["commit"]) >= 7 and r["file"] == f"checkpoints/{r['name']}.pt" for r in retired)


def test_own_exported_model_decodes_without_model_again(tmp_path):
    """A file made with one's own .pt decodes when the .pt lies beside it, in the current folder or in a
    CODEC_CHECKPOINTS folder; otherwise the error says what to pass. CODEC_CHECKPOINTS adds to the shipped
    models."""
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(ROOT / "checkpoints" / "msh-q1.pt", own / "mine.pt")
    work = tmp_path / "work"
    work.mkdir()
    assert cli("encode", SAMPLE, "-o", work / "a.cdc", "--model", own / "mine.pt").returncode == 0
    err = one_line_error(cli("decode", work / "a.cdc", cwd=work), "mine", "--model mine.pt", "CODEC_CHECKPOINTS")
    assert "Traceback" not in err and not (work / "a.png").exists()
    r = cli("decode", work / "a.cdc", "-o", work / "b.png", env={"CODEC_CHECKPOINTS": str(own)})
    assert r.returncode == 0, r.stderr
    shutil.copy(own / "mine.pt", work / "mine.pt")
    r = cli("decode", work / "a.cdc", "-o", work / "c.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("models", env={"CODEC_CHECKPOINTS": str(own)})
    names = [ln.split()[0] for ln in r.stdout.splitlines()]
    assert "mine" in names and "msh-q4" in names and "rvqgan-speech16k" in names
