"""Evaluation harness: BD metrics, CompressAI JSONs, metrics, the RD loop, baselines, outputs, cache, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec.config import data_path
from codec.eval import metrics as M
from codec.eval.baselines import AomAV1Intra, FFmpegMP3, FFmpegOpus, PillowJPEG, PillowWebP, X264, X265, X265Intra
from codec.eval.bd import bd_psnr, bd_rate, bd_table, load_results
from codec.eval.datasets import resolve
from codec.eval.rd import aggregate, evaluate, write_outputs

FIX = Path(__file__).resolve().parent / "fixtures" / "compressai"

# VCEG-M33's worked example (the curve pair used by Bjontegaard's spreadsheet and most BD implementations)
R1, P1 = [686.76, 309.58, 157.11, 85.95], [40.28, 37.18, 34.24, 31.42]
R2, P2 = [893.34, 407.8, 204.93, 112.75], [40.39, 37.21, 34.17, 31.24]
# the FAU-LMS bjontegaard package's published test curves (x265 presets)
R3, P3 = [9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851]
R4, P4 = [9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987]


def vceg_m33_bd_rate(r1, p1, r2, p2):
    """Independent reference: VCEG-M33 (cubic fit of ln R over PSNR, integrated over the common PSNR range)."""
    f1, f2 = np.polyfit(p1, np.log(r1), 3), np.polyfit(p2, np.log(r2), 3)
    lo, hi = max(min(p1), min(p2)), min(max(p1), max(p2))
    i1 = np.polyval(np.polyint(f1), hi) - np.polyval(np.polyint(f1), lo)
    i2 = np.polyval(np.polyint(f2), hi) - np.polyval(np.polyint(f2), lo)
    return (np.exp((i2 - i1) / (hi - lo)) - 1) * 100


def test_bd_rate_classic_examples():
    assert bd_rate(R1, P1, R2, P2, "cubic") == pytest.approx(vceg_m33_bd_rate(R1, P1, R2, P2), abs=1e-6)
    assert bd_rate(R1, P1, R2, P2, "cubic") == pytest.approx(31.3974, abs=1e-3)
    assert bd_rate(R1, P1, R2, P2, "pchip") == pytest.approx(31.3799, abs=1e-3)
    assert bd_rate(R3, P3, R4, P4, "cubic") == pytest.approx(-4.4205, abs=1e-3)
    assert bd_rate(R3, P3, R4, P4, "pchip") == pytest.approx(-4.4175, abs=1e-3)
    assert bd_psnr(R1, P1, R2, P2, "cubic") == pytest.approx(-1.1849, abs=1e-3)
    # a curve that costs exactly 25 % more bits everywhere has BD-rate +25 %
    assert bd_rate(R1, P1, np.array(R1) * 1.25, P1, "pchip") == pytest.approx(25.0, abs=1e-9)
    assert np.isnan(bd_rate([1, 2], [10, 11], [1, 2], [20, 21]))  # no overlap: no value
    # a curve whose quality falls as its rate rises (an undertrained model): no value, not an error from inside
    assert np.isnan(bd_rate([1, 2, 3], [30, 33, 35], [1.0, 2.0, 2.1], [34, 32, 31]))


def test_bd_rate_from_compressai_published_jsons():
    jpeg = load_results(FIX / "kodak_jpeg.json")["results"]
    hyper = load_results(FIX / "kodak_bmshj2018-hyperprior_mse.json")["results"]
    v = bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], hyper["bpp"], hyper["psnr-rgb"], "cubic")
    assert abs(v - (-55.3)) <= 0.5, v
    table = bd_table({"JPEG": jpeg, "hyperprior": hyper}, ["JPEG"])
    assert "| hyperprior | -55.3 % |" in table


def test_metrics_basics():
    a = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert M.psnr_rgb(a, a) == M.PSNR_CAP
    b = a.astype(int)
    b[0, 0, 0] ^= 1
    assert M.psnr_rgb(a, b.astype(np.uint8)) == pytest.approx(10 * np.log10(255**2 * a.size), rel=1e-9)
    assert M.ms_ssim_rgb(a, a) == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(M.ms_ssim_rgb(a[:100, :100], a[:100, :100]))
    x = np.random.default_rng(1).normal(size=(16000, 1)).astype(np.float32)
    assert M.si_sdr(x, 0.5 * x) > 60  # scale-invariant
    noisy = x + 0.1 * np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    assert M.si_sdr(x, noisy) == pytest.approx(20.0, abs=0.5)
    assert M.mel_distance(x, x, 16000) == 0.0
    assert M.mel_distance(x, noisy, 16000) < M.mel_distance(x, x * 0 + 0.01, 16000)


def test_psnr_yuv_weighting():
    from codec.media import Video

    rng = np.random.default_rng(0)
    ref = Video(rng.integers(0, 256, (2, 16, 16), dtype=np.uint8), rng.integers(0, 256, (2, 8, 8), dtype=np.uint8),
                rng.integers(0, 256, (2, 8, 8), dtype=np.uint8))
    dec = Video(ref.y.copy(), (ref.u.astype(int) ^ 1).astype(np.uint8), ref.v.copy())
    m = M.psnr_yuv420(ref, dec)
    assert m["psnr-y"] == M.PSNR_CAP and m["psnr-v"] == M.PSNR_CAP
    assert m["psnr-yuv"] == pytest.approx((6 * M.PSNR_CAP + m["psnr-u"] + M.PSNR_CAP) / 8)


def test_jpeg_matches_compressai_published_kodak_curve():
    """External check: Pillow JPEG on all of Kodak within 0.3 dB of CompressAI's published curve."""
    from codec.eval.reproduce.jpeg_vs_compressai import TOLERANCE_DB, check

    r = check(out=None, workers=2, progress=False)
    assert r["items"] == 24
    assert all(abs(d) <= TOLERANCE_DB for d in r["diff"]), r["diff"]


def test_image_harness_outputs_and_cache(tmp_path):
    ds = resolve("kodak", limit=2)
    calls = {"n": 0}

    class CountingJPEG(PillowJPEG):
        def encode(self, item, point):
            calls["n"] += 1
            return super().encode(item, point)

    codecs = [CountingJPEG(), PillowWebP()]
    points = {"jpeg": [20, 80], "webp": [20, 80]}
    recs = evaluate(codecs, ds, points, cache_dir=tmp_path / "cache", progress=False)
    assert len(recs) == 8 and calls["n"] == 4
    for r in recs:
        assert r["bpp"] == pytest.approx(r["bytes"] * 8 / (r["height"] * r["width"]))
        assert 20 < r["psnr-rgb"] < 50 and 0.8 < r["ms-ssim-rgb"] <= 1
    recs2 = evaluate(codecs, ds, points, cache_dir=tmp_path / "cache", progress=False)
    assert calls["n"] == 4 and len(recs2) == 8  # everything came from the cache
    agg = aggregate(recs2, "jpeg", "image")
    assert set(agg["results"]) >= {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
    assert agg["results"]["bpp"] == sorted(agg["results"]["bpp"])
    out = tmp_path / "out"
    res = write_outputs(out, ds, recs2, anchors=["jpeg"])
    for f in ("jpeg.json", "webp.json", "per_item.csv", "rd_psnr.png", "rd_msssim.png", "bd_rate.md"):
        assert (out / f).stat().st_size > 0, f
    assert json.loads((out / "jpeg.json").read_text())["results"]["psnr-rgb"] == agg["results"]["psnr-rgb"]
    assert "WebP (Pillow)" in res["tables"]["psnr"]


@pytest.mark.parametrize("codec_cls,point", [(X265Intra, 30), (AomAV1Intra, 40)])
def test_ffmpeg_intra_codecs_odd_sizes(codec_cls, point):
    from codec.media import load_image

    img = load_image(data_path("images", "kodak", "kodim01.png"))[:67, :101]
    c = codec_cls()
    data = c.encode(img, point)
    rec = c.decode(data, img)
    assert rec.shape == img.shape and M.psnr_rgb(img, rec) > 25


def test_audio_baselines_on_speech():
    from codec.eval.rd import measure
    from codec.media import load_audio

    samples, sr = load_audio(data_path("audio", "speech", "ljspeech", "LJ001-0002.wav"))
    item = (samples[: sr * 2], sr)
    dur = item[0].shape[0] / sr
    for codec, lo, hi in ((FFmpegOpus(), 8, 32), (FFmpegMP3(), 16, 64)):
        a, b = measure(codec, item, lo, speech=True), measure(codec, item, hi, speech=True)
        assert a["kbps"] < b["kbps"]
        assert b["mel-distance"] < a["mel-distance"]
        assert a["kbps"] == pytest.approx(a["bytes"] * 8 / dur / 1000)
        assert 1.0 <= a["pesq"] < b["pesq"] <= 4.7 and 0 < a["stoi"] <= b["stoi"] <= 1


def test_video_baselines_on_raw_clips():
    from codec.eval.rd import load_item, measure

    clip = load_item("video", str(data_path("video", "raw", "CiscoVT2people_320x192_12fps_9f.yuv")), None)
    assert (clip.width, clip.height, clip.frames, clip.fps) == (320, 192, 9, 12.0)
    a, b = measure(X264(), clip, 38), measure(X264(), clip, 23)
    assert a["kbps"] < b["kbps"] and a["psnr-yuv"] < b["psnr-yuv"] and len(b["per_frame_psnr_yuv"]) == 9
    # every decoded frame lines up with its original (a 12 fps stream once came back with duplicated frames)
    assert min(b["per_frame_psnr_yuv"]) > 30
    c = measure(X265(), clip, 23)
    assert abs(c["psnr-yuv"] - b["psnr-yuv"]) < 4
    y4m = load_item("video", str(data_path("video", "raw", "park_joy_480x270_50fps_10f.y4m")), 3)
    m = measure(X264(), y4m, 28)
    assert y4m.frames == 3 and 20 < m["psnr-yuv"] < 60


def test_cli_eval_runs_and_reports_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "codec", "eval", "--dataset", "kodak", "--limit", "1", "--codecs",
                        "jpeg", "--points", "jpeg=30", "--no-msssim", "--quiet", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "jpeg.json").exists() and "JPEG (Pillow)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "codec", "eval", "--dataset", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "no such dataset" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "codec", "eval", "--dataset", "kodak", "--codecs", "opus"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "codes audio" in r.stderr
