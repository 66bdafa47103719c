"""What the media modules share: the suffixes each modality reads, the modality of a path, and ffmpeg (the
imageio-ffmpeg wheel's static binary)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from codec.errors import MediaError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".m4a", ".aac", ".mp4"}
VIDEO_EXTENSIONS = {".y4m", ".yuv", ".mp4", ".mkv", ".avi", ".mov", ".webm"}


def _has_video_stream(p: Path) -> bool:
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p)], capture_output=True, text=True)
    return "Video:" in r.stderr


def modality_of_path(path, model_modality: str | None = None) -> str:
    """"image", "audio" or "video" for a media file, from its suffix (an .mp4 is video when it has a video
    stream); a suffix that says nothing falls back to ``model_modality``."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS and (suffix not in AUDIO_EXTENSIONS or _has_video_stream(p)):
        return "video"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if model_modality:
        return model_modality
    raise MediaError(f"{p}: cannot tell the media type from the suffix {suffix or '(none)'}; images: "
                     f"{', '.join(sorted(IMAGE_EXTENSIONS))}; audio: {', '.join(sorted(AUDIO_EXTENSIONS))}; video: "
                     f"{', '.join(sorted(VIDEO_EXTENSIONS))}")


def _existing(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"no such file: {p}")
    if not p.is_file():
        raise MediaError(f"not a file: {p}")
    return p


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
