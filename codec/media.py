"""Media I/O: decode files to arrays in a fixed range, and write them back. Every path of the package (CLI, RD
evaluation, MPQ) reads media through here.

Images -> ``uint8`` array ``(H, W, 3)`` (RGB). Conversion rules, applied in this order:
  - palette (P) images are expanded to their RGB(A) colours;
  - greyscale (L, I;16, I, F) is replicated to three channels; 16-bit and float data are scaled to 8 bits
    (16-bit: ``round(v / 257)``);
  - 16-bit RGB(A) PNGs are reduced to 8 bits by Pillow when it opens them (it keeps the high byte);
  - an alpha channel is composited over white (``RGBA``, ``LA``, ``PA``): codecs code colour, not transparency;
  - CMYK and YCbCr are converted to RGB by Pillow.
  Anything Pillow cannot open raises :class:`MediaError` naming the file.

Audio -> ``float32`` array ``(samples, channels)`` in [-1, 1] and the sample rate (wav, flac, ogg/vorbis via
soundfile; other formats through ffmpeg).

Video (raw) -> ``uint8`` planes of 4:2:0 frames: ``Y (T, H, W)``, ``U`` and ``V (T, H/2, W/2)`` from ``.y4m`` (C420
variants only) or headerless ``.yuv`` (I420, size and frame rate given), and anything ffmpeg decodes (mp4, mkv).
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.errors import MediaError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".m4a", ".aac", ".mp4"}
VIDEO_EXTENSIONS = {".y4m", ".yuv", ".mp4", ".mkv", ".avi", ".mov", ".webm"}


def _existing(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"no such file: {p}")
    if not p.is_file():
        raise MediaError(f"not a file: {p}")
    return p


# --------------------------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------------------------
def image_to_rgb8(img) -> np.ndarray:
    """Apply the documented conversion rules to a PIL image; returns uint8 (H, W, 3)."""
    from PIL import Image

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        scale = 257.0 if img.mode.startswith("I;16") or a.max() > 255 else 1.0
        if img.mode == "F" and a.max() <= 1.0:
            scale = 1.0 / 255.0
        a = np.clip(np.round(a / scale), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def load_image(path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3) under the module's conversion rules."""
    from PIL import Image, UnidentifiedImageError

    p = _existing(path)
    try:
        with Image.open(p) as img:
            img.load()
            out = image_to_rgb8(img)
    except UnidentifiedImageError:
        raise MediaError(f"{p}: not an image format this package reads ({', '.join(sorted(IMAGE_EXTENSIONS))})") \
            from None
    except (OSError, ValueError) as e:
        raise MediaError(f"{p}: cannot decode image ({e})") from None
    if out.shape[0] < 1 or out.shape[1] < 1:
        raise MediaError(f"{p}: empty image")
    return out


def decode_image_bytes(data: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return image_to_rgb8(img)
    except Exception as e:  # noqa: BLE001 - any decoder failure is a media error here
        raise MediaError(f"cannot decode image bytes ({e})") from None


def save_image(path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path)


# --------------------------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------------------------
def load_audio(path) -> tuple[np.ndarray, int]:
    """Read audio as float32 (samples, channels) in [-1, 1] and its sample rate."""
    import soundfile as sf

    p = _existing(path)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data), int(sr)
    except (RuntimeError, sf.LibsndfileError):
        pass
    return _ffmpeg_audio(p)


def _ffmpeg_audio(p: Path) -> tuple[np.ndarray, int]:
    probe = ffprobe_audio(p)
    if probe is None:
        raise MediaError(f"{p}: not an audio format this package reads")
    sr, ch = probe
    out = run_ffmpeg(["-i", str(p), "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(ch), "-ar", str(sr), "-"])
    return np.frombuffer(out, dtype="<f4").reshape(-1, ch).astype(np.float32), sr


def ffprobe_audio(p: Path):
    """(sample_rate, channels) of the first audio stream, parsed from ffmpeg's banner; None if there is none."""
    import re

    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p)], capture_output=True, text=True)
    m = re.search(r"Audio: [^,]+, (\d+) Hz, ([^,]+)", r.stderr)
    if not m:
        return None
    layout = m.group(2).strip()
    ch = {"mono": 1, "stereo": 2}.get(layout)
    if ch is None:
        mm = re.match(r"(\d+)(\.(\d+))? channels|(\d+)\.(\d+)", layout)
        ch = int(mm.group(1)) if mm and mm.group(1) else (int(mm.group(4)) + int(mm.group(5)) if mm else 2)
    return int(m.group(1)), ch


def save_audio(path, samples: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.asarray(samples, dtype=np.float32), int(sample_rate), subtype="PCM_16")


# --------------------------------------------------------------------------------------------------------------
# video (raw 4:2:0)
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Video:
    y: np.ndarray  # (T, H, W) uint8
    u: np.ndarray  # (T, H/2, W/2)
    v: np.ndarray
    fps_num: int = 25
    fps_den: int = 1

    @property
    def frames(self) -> int:
        return int(self.y.shape[0])

    @property
    def height(self) -> int:
        return int(self.y.shape[1])

    @property
    def width(self) -> int:
        return int(self.y.shape[2])

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    def i420_bytes(self) -> bytes:
        parts = []
        for t in range(self.frames):
            parts += [self.y[t].tobytes(), self.u[t].tobytes(), self.v[t].tobytes()]
        return b"".join(parts)


def _split_i420(raw: bytes, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cw, ch = (width + 1) // 2, (height + 1) // 2
    fsize = width * height + 2 * cw * ch
    n = len(raw) // fsize
    if n == 0 or len(raw) % fsize:
        raise MediaError(f"raw I420 data of {len(raw)} bytes is not a whole number of {width}x{height} frames")
    a = np.frombuffer(raw, dtype=np.uint8, count=n * fsize).reshape(n, fsize)
    y = a[:, : width * height].reshape(n, height, width)
    u = a[:, width * height: width * height + cw * ch].reshape(n, ch, cw)
    v = a[:, width * height + cw * ch:].reshape(n, ch, cw)
    return y.copy(), u.copy(), v.copy()


def load_y4m(path, max_frames: int | None = None) -> Video:
    p = _existing(path)
    data = p.read_bytes()
    nl = data.find(b"\n")
    if not data.startswith(b"YUV4MPEG2") or nl < 0:
        raise MediaError(f"{p}: not a YUV4MPEG2 file")
    params = data[:nl].decode("ascii", "replace").split()[1:]
    w = h = None
    fps = (25, 1)
    cs = "420"
    for t in params:
        if t[0] == "W":
            w = int(t[1:])
        elif t[0] == "H":
            h = int(t[1:])
        elif t[0] == "F":
            a, b = t[1:].split(":")
            fps = (int(a), int(b))
        elif t[0] == "C":
            cs = t[1:]
    if not w or not h:
        raise MediaError(f"{p}: y4m header lacks a size")
    if not cs.startswith("420"):
        raise MediaError(f"{p}: y4m colour space C{cs} is not supported (4:2:0 only)")
    cw, ch = (w + 1) // 2, (h + 1) // 2
    fsize = w * h + 2 * cw * ch
    frames, pos = [], nl + 1
    while pos < len(data) and (max_frames is None or len(frames) < max_frames):
        fnl = data.find(b"\n", pos)
        if fnl < 0 or not data.startswith(b"FRAME", pos):
            raise MediaError(f"{p}: corrupt y4m frame header at byte {pos}")
        start = fnl + 1
        if start + fsize > len(data):
            raise MediaError(f"{p}: truncated y4m frame")
        frames.append(data[start: start + fsize])
        pos = start + fsize
    y, u, v = _split_i420(b"".join(frames), w, h)
    return Video(y, u, v, *fps)


def save_y4m(path, video: Video) -> None:
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{video.width} H{video.height} F{video.fps_num}:{video.fps_den} Ip A1:1 C420jpeg\n"
                .encode())
        for t in range(video.frames):
            f.write(b"FRAME\n")
            f.write(video.y[t].tobytes() + video.u[t].tobytes() + video.v[t].tobytes())


def load_yuv(path, width: int, height: int, fps: float = 25.0, max_frames: int | None = None) -> Video:
    p = _existing(path)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    fsize = width * height + 2 * cw * ch
    raw = p.read_bytes() if max_frames is None else p.read_bytes()[: max_frames * fsize]
    y, u, v = _split_i420(raw, width, height)
    num, den = _fps_fraction(fps)
    return Video(y, u, v, num, den)


def _fps_fraction(fps: float) -> tuple[int, int]:
    from fractions import Fraction

    f = Fraction(fps).limit_denominator(1001)
    return f.numerator, f.denominator


def load_video(path, size: tuple[int, int] | None = None, fps: float | None = None,
               max_frames: int | None = None) -> Video:
    """Any supported video as 4:2:0 planes. ``.yuv`` needs ``size=(width, height)`` (and ``fps``)."""
    p = _existing(path)
    ext = p.suffix.lower()
    if ext == ".y4m":
        return load_y4m(p, max_frames)
    if ext == ".yuv":
        if size is None:
            raise MediaError(f"{p}: raw .yuv needs its size (--size WxH) and frame rate (--fps)")
        return load_yuv(p, size[0], size[1], fps or 25.0, max_frames)
    import re

    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p)], capture_output=True, text=True)
    m = re.search(r"Video: .*?, (\d{2,5})x(\d{2,5})", r.stderr)
    if not m:
        raise MediaError(f"{p}: no video stream ffmpeg can read")
    w, h = int(m.group(1)), int(m.group(2))
    fm = re.search(r"([\d.]+) fps", r.stderr)
    rate = float(fm.group(1)) if fm else 25.0
    args = ["-i", str(p)]
    if max_frames:
        args += ["-frames:v", str(max_frames)]
    raw = run_ffmpeg(args + ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
    y, u, v = _split_i420(raw, w, h)
    num, den = _fps_fraction(fps or rate)
    return Video(y, u, v, num, den)


# --------------------------------------------------------------------------------------------------------------
# ffmpeg (the imageio-ffmpeg wheel's static binary)
# --------------------------------------------------------------------------------------------------------------
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_version() -> str:
    r = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True)
    return r.stdout.split("\n", 1)[0].replace("ffmpeg version ", "").split(" ")[0]


def run_ffmpeg(args: list[str], input_bytes: bytes | None = None, timeout: float = 600) -> bytes:
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    try:
        r = subprocess.run(cmd, input=input_bytes, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffmpeg timed out after {timeout:.0f} s: {' '.join(args[:6])} ...") from None
    if r.returncode != 0:
        msg = r.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MediaError(f"ffmpeg failed: {msg[-1] if msg else 'exit code %d' % r.returncode}")
    return r.stdout


# --------------------------------------------------------------------------------------------------------------
# video streaming (bounded memory: one frame at a time)
# --------------------------------------------------------------------------------------------------------------
@dataclass
class VideoInfo:
    width: int
    height: int
    fps_num: int
    fps_den: int
    frames: int | None  # None when the container does not say (ffmpeg inputs: an estimate may be given)

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den


def _i420_size(w: int, h: int) -> int:
    return w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)


def _frame_from_bytes(raw: bytes, w: int, h: int):
    y, u, v = _split_i420(raw, w, h)
    return y[0], u[0], v[0]


def open_video(path, size: tuple[int, int] | None = None, fps: float | None = None,
               max_frames: int | None = None):
    """``(VideoInfo, iterator of (Y, U, V) uint8 planes)``, one 4:2:0 frame at a time (memory bounded whatever the
    clip's length). ``.y4m``, raw ``.yuv`` (``size=(width, height)`` and ``fps`` needed) and anything ffmpeg reads
    (decoded through a pipe from the imageio-ffmpeg binary, converted to yuv420p)."""
    import re

    p = _existing(path)
    ext = p.suffix.lower()
    if ext == ".y4m":
        f = open(p, "rb")
        line = f.readline(4096)
        if not line.startswith(b"YUV4MPEG2") or not line.endswith(b"\n"):
            f.close()
            raise MediaError(f"{p}: not a YUV4MPEG2 file")
        w = h = None
        num, den = 25, 1
        cs = "420"
        for t in line.decode("ascii", "replace").split()[1:]:
            if t[0] == "W":
                w = int(t[1:])
            elif t[0] == "H":
                h = int(t[1:])
            elif t[0] == "F":
                a, b = t[1:].split(":")
                num, den = int(a), int(b)
            elif t[0] == "C":
                cs = t[1:]
        if not w or not h:
            f.close()
            raise MediaError(f"{p}: y4m header lacks a size")
        if not cs.startswith("420"):
            f.close()
            raise MediaError(f"{p}: y4m colour space C{cs} is not supported (4:2:0 only)")
        fsize = _i420_size(w, h)
        est = (p.stat().st_size - len(line)) // (fsize + 6)

        def gen_y4m():
            n = 0
            with f:
                while max_frames is None or n < max_frames:
                    hdr = f.readline(4096)
                    if not hdr:
                        return
                    if not hdr.startswith(b"FRAME"):
                        raise MediaError(f"{p}: corrupt y4m frame header in frame {n}")
                    raw = f.read(fsize)
                    if len(raw) < fsize:
                        raise MediaError(f"{p}: truncated y4m frame {n}")
                    yield _frame_from_bytes(raw, w, h)
                    n += 1

        return VideoInfo(w, h, num, den, min(est, max_frames) if max_frames else est), gen_y4m()
    if ext == ".yuv":
        if size is None:
            raise MediaError(f"{p}: raw .yuv needs its size (--size WxH) and frame rate (--fps)")
        w, h = int(size[0]), int(size[1])
        if w < 1 or h < 1:
            raise MediaError(f"bad frame size {w}x{h}")
        fsize = _i420_size(w, h)
        total = p.stat().st_size
        if total == 0 or total % fsize:
            raise MediaError(f"{p}: {total} bytes is not a whole number of {w}x{h} I420 frames "
                             f"({fsize} bytes each); check --size")
        n_frames = total // fsize if max_frames is None else min(total // fsize, max_frames)
        num, den = _fps_fraction(fps or 25.0)

        def gen_yuv():
            with open(p, "rb") as f:
                for _ in range(n_frames):
                    yield _frame_from_bytes(f.read(fsize), w, h)

        return VideoInfo(w, h, num, den, n_frames), gen_yuv()
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p)], capture_output=True, text=True)
    m = re.search(r"Video: .*?, (\d{2,5})x(\d{2,5})", r.stderr)
    if not m:
        raise MediaError(f"{p}: no video stream ffmpeg can read")
    w, h = int(m.group(1)), int(m.group(2))
    fm = re.search(r"([\d.]+) fps", r.stderr)
    num, den = _fps_fraction(fps or (float(fm.group(1)) if fm else 25.0))
    dm = re.search(r"Duration: (\d+):(\d+):([\d.]+)", r.stderr)
    est = None
    if dm:
        secs = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3))
        est = int(round(secs * num / den))
        if max_frames:
            est = min(est, max_frames)
    args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(p), "-fps_mode", "passthrough"]
    if max_frames:
        args += ["-frames:v", str(max_frames)]
    args += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"]
    fsize = _i420_size(w, h)

    def gen_ffmpeg():
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            n = 0
            while True:
                raw = proc.stdout.read(fsize)
                if not raw:
                    break
                if len(raw) < fsize:
                    raise MediaError(f"{p}: ffmpeg returned a partial frame {n}")
                yield _frame_from_bytes(raw, w, h)
                n += 1
            if proc.wait() != 0:
                msg = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
                raise MediaError(f"{p}: ffmpeg failed: {msg[-1] if msg else 'exit code %d' % proc.returncode}")
            if n == 0:
                raise MediaError(f"{p}: no video frames decoded")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    return VideoInfo(w, h, num, den, est), gen_ffmpeg()


VIDEO_OUTPUTS = (".y4m", ".yuv", ".mp4", ".mkv")


class VideoWriter:
    """Write 4:2:0 frames one at a time to ``.y4m``, raw ``.yuv`` (I420) or ``.mp4`` / ``.mkv`` (lossless H.264:
    x264 ``-qp 0``, so the decoded frames are kept exactly). Writes to a temporary file beside ``path`` and moves it
    into place on :meth:`close`; :meth:`abort` (or an exception inside ``with``) removes it, so a failed decode never
    leaves a partial output nor destroys an existing file."""

    def __init__(self, path, width: int, height: int, fps_num: int, fps_den: int):
        import os

        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_OUTPUTS:
            raise MediaError(f"video output must be one of {', '.join(VIDEO_OUTPUTS)}, not {ext or 'no suffix'}")
        self.w, self.h, self.ext = int(width), int(height), ext
        self.tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp{ext}")
        self.frames = 0
        self.proc = None
        if ext in (".mp4", ".mkv"):
            args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
                    "-pix_fmt", "yuv420p", "-s", f"{self.w}x{self.h}", "-r", f"{fps_num}/{fps_den}", "-i", "-",
                    "-c:v", "libx264", "-preset", "veryfast", "-qp", "0", "-pix_fmt", "yuv420p", str(self.tmp)]
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            self.f = self.proc.stdin
        else:
            self.f = open(self.tmp, "wb")
            if ext == ".y4m":
                self.f.write(f"YUV4MPEG2 W{self.w} H{self.h} F{fps_num}:{fps_den} Ip A1:1 C420jpeg\n".encode())

    def write(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        if self.ext == ".y4m":
            self.f.write(b"FRAME\n")
        self.f.write(y.tobytes() + u.tobytes() + v.tobytes())
        self.frames += 1

    def close(self) -> None:
        import os

        self.f.close()
        if self.proc is not None:
            err = self.proc.stderr.read().decode("utf-8", "replace").strip()
            if self.proc.wait() != 0:
                self.abort()
                raise MediaError(f"ffmpeg could not write {self.path}: {err.splitlines()[-1] if err else ''}")
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.f.close()
        except OSError:
            pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
