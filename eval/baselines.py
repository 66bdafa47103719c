"""Classical codecs run through the RD harness, with the same interface as learned ones.

An RD codec has ``key`` (CLI name), ``name`` (legend), ``modality``, ``learned``, ``ladder()`` (default operating
points), ``identity()`` (versions and settings: part of the result-cache key), ``encode(item, point) -> bytes`` and
``decode(data, item) -> media``. The bytes are everything a decoder needs (the whole file), so rates are real.

Images (RGB uint8 arrays), everything pip-installable (Pillow, and ffmpeg from the imageio-ffmpeg wheel):
  - ``jpeg``: Pillow JPEG with its defaults (4:2:0 chroma subsampling, passed explicitly as ``subsampling=2``;
    standard tables), ``quality`` ladder. CompressAI's published JPEG curve is Pillow with default settings too.
  - ``webp``: Pillow WebP (lossy, method 4 = default), ``quality`` ladder.
  - ``avif``: Pillow AVIF (libavif/aom, 4:2:0, speed 6 = default), ``quality`` ladder.
  - ``hevc``: HEVC intra with x265, 4:4:4 YCbCr (BT.601 full range, the BPG-like anchor), preset slow, tune psnr
    (ffmpeg's x265 defaults are psycho-visually tuned: psy-rd and adaptive quantisation cost about 5 BD-rate points
    on PSNR), ``crf`` ladder; the size is the raw Annex-B bitstream.
  - ``av1``: AV1 intra with libaom (still picture, 4:4:4 BT.601 full range, cpu-used 6), ``crf`` ladder; the size is
    the raw OBU stream.
Audio (float32 ``(samples, channels)`` + sample rate):
  - ``opus``: libopus VBR at the ladder's kbps, Ogg file bytes (container included).
  - ``mp3``: LAME CBR at the ladder's kbps, MP3 file bytes.
Video (:class:`codec.media.Video`, 4:2:0):
  - ``x264`` / ``x265``: preset medium, tune psnr, GOP 32 (one intra frame per 32, as our video codec's default),
    default B-frames, ``crf`` ladder; raw elementary stream bytes.

ffmpeg runs as a subprocess, so its encode/decode times include process start-up (tens of ms); Pillow codecs run
in process.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from codec.errors import CodecError
from codec.media import Video, decode_image_bytes, ffmpeg_version, run_ffmpeg


class RDCodec:
    key = ""
    name = ""
    modality = "image"
    learned = False
    point_name = "quality"

    def ladder(self) -> list:
        raise NotImplementedError

    def identity(self) -> str:
        return f"{self.key}"

    def encode(self, item, point) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, item):
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------------------
# images: Pillow
# --------------------------------------------------------------------------------------------------------------
class _PillowImage(RDCodec):
    fmt = ""
    options: dict = {}

    def identity(self) -> str:
        import PIL

        return f"{self.key}|pillow-{PIL.__version__}|{sorted(self.options.items())}"

    def encode(self, item, point) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(item).save(buf, format=self.fmt, quality=int(point), **self.options)
        return buf.getvalue()

    def decode(self, data, item):
        return decode_image_bytes(data)


class PillowJPEG(_PillowImage):
    key, name, fmt = "jpeg", "JPEG (Pillow)", "JPEG"
    options = {"subsampling": 2}

    def ladder(self):
        return [5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95]


class PillowWebP(_PillowImage):
    key, name, fmt = "webp", "WebP (Pillow)", "WEBP"
    options = {"method": 4}

    def ladder(self):
        return [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]


class PillowAVIF(_PillowImage):
    key, name, fmt = "avif", "AVIF (Pillow, libavif)", "AVIF"
    options = {"speed": 6, "subsampling": "4:2:0"}

    def ladder(self):
        return [5, 15, 25, 35, 45, 55, 65, 75, 85]


# --------------------------------------------------------------------------------------------------------------
# images: ffmpeg intra codecs (4:4:4 YCbCr, BT.601 full range)
# --------------------------------------------------------------------------------------------------------------
class _FFmpegCodec(RDCodec):
    """A codec run through the imageio-ffmpeg binary: ``codec_args`` and the raw ``muxer`` define it."""

    muxer = ""
    codec_args: list = []
    decode_args: list = []

    def identity(self) -> str:
        dec = f"|decode {' '.join(self.decode_args)}" if self.decode_args else ""
        return f"{self.key}|ffmpeg-{ffmpeg_version()}|{' '.join(self.codec_args)}{dec}"


_TO_YUV = "scale=out_color_matrix=bt601:out_range=full,format=yuv444p"
_TO_RGB = "scale=in_color_matrix=bt601:in_range=full,format=rgb24"


class _FFmpegImage(_FFmpegCodec):
    point_name = "crf"

    def encode(self, item, point) -> bytes:
        h, w, _ = item.shape
        if h % 2 or w % 2:  # 4:4:4 needs no padding, but some encoders want even sizes: pad by edge replication
            item = np.pad(item, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            h, w = item.shape[:2]
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / f"o.{self.muxer}"
            run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-", "-vf", _TO_YUV,
                        "-color_range", "pc", "-colorspace", "bt470bg", *self.codec_args, "-crf", str(point),
                        "-frames:v", "1", "-f", self.muxer, str(out)], input_bytes=item.tobytes())
            return out.read_bytes()

    def decode(self, data, item):
        h, w, _ = item.shape
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / f"i.{self.muxer}"
            src.write_bytes(data)
            raw = run_ffmpeg(["-f", self.muxer, "-i", str(src), "-vf", _TO_RGB, "-f", "rawvideo", "-"])
        hh, ww = h + h % 2, w + w % 2
        if len(raw) < hh * ww * 3:
            raise CodecError(f"{self.key}: decoder returned {len(raw)} bytes, expected {hh * ww * 3}")
        return np.frombuffer(raw, dtype=np.uint8, count=hh * ww * 3).reshape(hh, ww, 3)[:h, :w].copy()


class X265Intra(_FFmpegImage):
    key, name, muxer = "hevc", "HEVC intra (x265, 4:4:4)", "hevc"
    codec_args = ["-c:v", "libx265", "-preset", "slow", "-tune", "psnr", "-x265-params", "log-level=error:keyint=1"]

    def ladder(self):
        return [22, 26, 30, 34, 38, 42, 46, 50]


class AomAV1Intra(_FFmpegImage):
    key, name, muxer = "av1", "AV1 intra (libaom, 4:4:4)", "obu"
    codec_args = ["-c:v", "libaom-av1", "-still-picture", "1", "-cpu-used", "6", "-b:v", "0"]

    def ladder(self):
        return [16, 24, 32, 40, 48, 56, 62]


# --------------------------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------------------------
class _FFmpegAudio(_FFmpegCodec):
    modality = "audio"
    point_name = "kbps"

    def encode(self, item, point) -> bytes:
        samples, sr = item
        ch = samples.shape[1]
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / f"o.{self.muxer}"
            run_ffmpeg(["-f", "f32le", "-ar", str(sr), "-ac", str(ch), "-i", "-", *self.codec_args,
                        "-b:a", f"{point}k", "-f", self.muxer, str(out)],
                       input_bytes=np.ascontiguousarray(samples, dtype="<f4").tobytes())
            return out.read_bytes()

    def decode(self, data, item):
        samples, sr = item
        n, ch = samples.shape
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / f"i.{self.muxer}"
            src.write_bytes(data)
            raw = run_ffmpeg(["-i", str(src), "-f", "f32le", "-ar", str(sr), "-ac", str(ch), "-"])
        out = np.frombuffer(raw, dtype="<f4").reshape(-1, ch)
        if out.shape[0] >= n:
            return out[:n].copy()
        return np.concatenate([out, np.zeros((n - out.shape[0], ch), np.float32)])


class FFmpegOpus(_FFmpegAudio):
    key, name, muxer = "opus", "Opus (libopus)", "ogg"
    codec_args = ["-c:a", "libopus", "-vbr", "on", "-application", "audio"]

    def ladder(self):
        return [6, 8, 12, 16, 24, 32, 48, 64]


class FFmpegMP3(_FFmpegAudio):
    key, name, muxer = "mp3", "MP3 (LAME)", "mp3"
    codec_args = ["-c:a", "libmp3lame"]

    def ladder(self):
        return [8, 16, 24, 32, 48, 64, 96, 128]


# --------------------------------------------------------------------------------------------------------------
# video
# --------------------------------------------------------------------------------------------------------------
GOP = 32


class _FFmpegVideo(_FFmpegCodec):
    modality = "video"
    point_name = "crf"
    # every decoded frame exactly once: ffmpeg's default rate conversion duplicated the frames of a 12 fps stream
    decode_args = ["-fps_mode", "passthrough"]

    def ladder(self):
        return [18, 23, 28, 33, 38, 43]

    def encode(self, item: Video, point) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / f"o.{self.muxer}"
            run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{item.width}x{item.height}",
                        "-r", f"{item.fps_num}/{item.fps_den}", "-i", "-", *self.codec_args, "-crf", str(point),
                        "-f", self.muxer, str(out)], input_bytes=item.i420_bytes())
            return out.read_bytes()

    def decode(self, data, item: Video) -> Video:
        from codec.media.video import split_i420

        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / f"i.{self.muxer}"
            src.write_bytes(data)
            raw = run_ffmpeg(["-f", self.muxer, "-i", str(src), *self.decode_args, "-f", "rawvideo",
                              "-pix_fmt", "yuv420p", "-"])
        y, u, v = split_i420(raw, item.width, item.height)
        return Video(y, u, v, item.fps_num, item.fps_den)


class X264(_FFmpegVideo):
    key, name, muxer = "x264", f"H.264 (x264 medium, tune psnr, GOP {GOP})", "h264"
    codec_args = ["-c:v", "libx264", "-preset", "medium", "-tune", "psnr", "-g", str(GOP), "-keyint_min", str(GOP),
                  "-x264-params", "log-level=error"]


class X265(_FFmpegVideo):
    key, name, muxer = "x265", f"HEVC (x265 medium, tune psnr, GOP {GOP})", "hevc"
    codec_args = ["-c:v", "libx265", "-preset", "medium", "-tune", "psnr",
                  "-x265-params", f"log-level=error:keyint={GOP}:min-keyint={GOP}"]


CLASSICAL = {c.key: c for c in (PillowJPEG, PillowWebP, PillowAVIF, X265Intra, AomAV1Intra, FFmpegOpus, FFmpegMP3,
                                X264, X265)}


def available_codecs(modality: str | None = None) -> list[str]:
    return [k for k, c in CLASSICAL.items() if modality is None or c.modality == modality]


def get_codec(key: str) -> RDCodec:
    """A codec for the harness by key (classical ones here; learned codecs register through the same call)."""
    if key in CLASSICAL:
        return CLASSICAL[key]()
    from codec.eval.learned import learned_codec, learned_keys

    c = learned_codec(key)
    if c is not None:
        return c
    raise CodecError(f"unknown codec {key!r}; available: {', '.join(list(CLASSICAL) + learned_keys())}")
