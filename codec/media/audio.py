"""Audio: files -> float32 (samples, channels) in [-1, 1] and the sample rate (soundfile; other formats through
ffmpeg), and back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from codec.errors import MediaError
from codec.media.common import _existing, ffmpeg_exe, run_ffmpeg


#: the sample formats a decoded file can be written in (soundfile subtypes), in the order the container numbers them
SAMPLE_FORMATS = ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8", "PCM_S8")
#: what each output container can hold, best first, for formats it cannot
_FALLBACK = {".flac": ("PCM_24", "PCM_16", "PCM_S8"), ".ogg": ("VORBIS",)}


def audio_sample_format(path) -> str | None:
    """The sample format of an audio file (a :data:`SAMPLE_FORMATS` entry), or None when it has none of them
    (compressed formats such as mp3 or Vorbis, decoded to float)."""
    import soundfile as sf

    try:
        sub = sf.info(str(path)).subtype
    except (RuntimeError, sf.LibsndfileError):
        return None
    return sub if sub in SAMPLE_FORMATS else None


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


def save_audio(path, samples: np.ndarray, sample_rate: int, sample_format: str | None = None) -> None:
    """Write audio; ``sample_format`` (a :data:`SAMPLE_FORMATS` entry, default 16-bit PCM) is kept when the
    output format can hold it, else the closest one it can (FLAC: 24-bit for 32-bit and float sources)."""
    import soundfile as sf

    sub = sample_format or "PCM_16"
    ext = Path(str(path)).suffix.lower()
    if not sf.check_format(ext.lstrip(".").upper() if ext else "WAV", sub):
        sub = next((s for s in _FALLBACK.get(ext, ("PCM_16",)) if sf.check_format(ext.lstrip(".").upper(), s)),
                   None)
    sf.write(str(path), np.asarray(samples, dtype=np.float32), int(sample_rate), subtype=sub)
