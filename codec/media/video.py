"""Video: 4:2:0 frames. One reader, :func:`open_video` (one frame at a time, bounded memory: ``.y4m``, raw
``.yuv`` and anything ffmpeg decodes); :func:`load_video` collects its frames into a :class:`Video`. One writer,
:class:`VideoWriter`."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.errors import MediaError
from codec.media.common import _existing, ffmpeg_exe


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


def split_i420(raw: bytes, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def save_y4m(path, video: Video) -> None:
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{video.width} H{video.height} F{video.fps_num}:{video.fps_den} Ip A1:1 C420jpeg\n"
                .encode())
        for t in range(video.frames):
            f.write(b"FRAME\n")
            f.write(video.y[t].tobytes() + video.u[t].tobytes() + video.v[t].tobytes())


def _fps_fraction(fps: float) -> tuple[int, int]:
    from fractions import Fraction

    f = Fraction(fps).limit_denominator(1001)
    return f.numerator, f.denominator


def load_video(path, size: tuple[int, int] | None = None, fps: float | None = None,
               max_frames: int | None = None) -> Video:
    """A whole clip as a :class:`Video`: the frames of :func:`open_video` (``.yuv`` needs ``size=(width, height)``
    and ``fps``)."""
    info, frames = open_video(path, size=size, fps=fps, max_frames=max_frames)
    ys, us, vs = [], [], []
    for y, u, v in frames:
        ys.append(y)
        us.append(u)
        vs.append(v)
    if not ys:
        raise MediaError(f"{path}: no video frames")
    return Video(np.stack(ys), np.stack(us), np.stack(vs), info.fps_num, info.fps_den)


def load_y4m(path, max_frames: int | None = None) -> Video:
    """A ``.y4m`` clip (4:2:0) as a :class:`Video`."""
    if Path(path).suffix.lower() != ".y4m":
        raise MediaError(f"{path}: not a .y4m file")
    return load_video(path, max_frames=max_frames)


def load_yuv(path, width: int, height: int, fps: float = 25.0, max_frames: int | None = None) -> Video:
    """A headerless I420 ``.yuv`` clip of the given size as a :class:`Video`."""
    if Path(path).suffix.lower() != ".yuv":
        raise MediaError(f"{path}: not a .yuv file")
    return load_video(path, size=(width, height), fps=fps, max_frames=max_frames)


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
    y, u, v = split_i420(raw, w, h)
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
