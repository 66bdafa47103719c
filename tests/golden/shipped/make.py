"""Write the shipped-model golden files: one input per shipped family, coded with the current code, and the hash of
what it decodes to, into ``v<format version>/``. Run only when a format or model change is deliberate:
python tests/golden/shipped/make.py. Older folders stay: ``v2/`` was written by codec 0.1.0 (commit 854d837,
container format 2), and the current code must keep decoding those files to the same output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def inputs():
    """name -> (encode function) over fixed inputs from docs/sample and the shared data."""
    from codec.api import encode_audio, encode_image, encode_video
    from codec.config import data_path
    from codec.media import load_audio, load_image, load_video

    root = HERE.parent.parent.parent
    img = load_image(root / "docs" / "sample" / "kodim23.png")
    speech, ssr = load_audio(data_path("audio", "speech", "fsdd", "recordings", "0_george_0.wav"))
    music, msr = load_audio(data_path("audio", "music", "librosa",
                                      "456440__inspectorj__bird-whistling-robin-single-13.hq.ogg"))
    vid = load_video(data_path("video", "raw", "park_joy_480x270_50fps_10f.y4m"), max_frames=6)
    speech, music = speech[: 3 * ssr], music[: 2 * msr]
    return {
        "msh-q1": lambda: encode_image(img, "msh-q1"), "msh-q4": lambda: encode_image(img, "msh-q4"),
        "msh-q7": lambda: encode_image(img, "msh-q7"), "walloc-rgb16x": lambda: encode_image(img, "walloc-rgb16x"),
        "rvqgan-speech16k": lambda: encode_audio(speech, ssr, "rvqgan-speech16k", kbps=3),
        "rvqgan-music24k-stereo": lambda: encode_audio(music, msr, "rvqgan-music24k-stereo"),
        "walloc-stereo": lambda: encode_audio(music, msr, "walloc-stereo"),
        "video-msh-q4": lambda: encode_video(vid, "video-msh-q4"),
    }


def short(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def decode_one_thread(data: bytes):
    """Decode with one CPU thread: the float synthesis (latent -> pixels / samples) rounds the same way then on
    every machine and whatever thread count the caller uses (the symbols are exact either way)."""
    import torch

    from codec.api import decode

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return decode(data)
    finally:
        torch.set_num_threads(threads)


def output_hash(x) -> str:
    """Hash of a decoded image array, (samples, rate) pair or Video."""
    if isinstance(x, tuple):
        x = x[0]
    if hasattr(x, "y"):
        return short(x.y.tobytes() + x.u.tobytes() + x.v.tobytes())
    return short(np.ascontiguousarray(x).tobytes())


def main() -> None:
    from codec.bitstream import FORMAT_VERSION

    folder = HERE / f"v{FORMAT_VERSION}"
    folder.mkdir(exist_ok=True)
    out = {}
    for name, enc in inputs().items():
        data = enc()
        (folder / f"{name}.cdc").write_bytes(data)
        out[name] = {"file": f"{name}.cdc", "sha256_16": short(data), "decoded_sha256_16": output_hash(decode_one_thread(data)),
                     "bytes": len(data)}
    (folder / "expected.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
