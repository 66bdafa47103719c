"""Result tables and figures (docs/results/) for the learned video codec, regenerated from the shipped checkpoints.

    python -m codec.eval.reproduce.video [--workers 2] [--max-frames 32] [--no-manifest]

On the raw clips (``video``: park_joy, CiscoVT2people, RaceHorses) and the short H.264 clips (``video-h264``:
carphone pristine and distorted, bikes, Big Buck Bunny; their first ``--max-frames`` frames), none of which the
temporal prior was trained on: kbps from the container bytes and PSNR-YUV 4:2:0 for

  - ``video-msh``: our latent video codec (shipped image model + temporal prior, one intra frame per 32);
  - ``video-msh-intra``: the same codec with every frame intra (the image codec alone, same colour conversion
    and container);
  - ``x264`` / ``x265``: preset medium, tune psnr, GOP 32, default B-frames, crf ladder.

BD-rates (Bjøntegaard, cubic, PSNR-YUV) are computed per clip and averaged over clips, as video test conditions do,
and also on the dataset-mean curves; encode and decode frames per second of the default model (quality 4) per
clip, on one thread, measured after a warm-up. Results go to
``results/<set>-learned/``; tables to ``docs/results/tables/video_*.md``, figures to ``docs/results/figures``; the mean points of
the shipped ladder into ``checkpoints/manifest.json`` (``rd.<set>``) unless ``--no-manifest``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from codec.config import repo_root
from codec.eval.baselines import get_codec
from codec.eval.bd import bd_rate
from codec.eval.datasets import resolve
from codec.eval.rd import evaluate, write_outputs
from codec.eval.reproduce.common import results_dirs

KEYS = ["video-msh", "video-msh-intra", "x264", "x265"]
SETS = ["video", "video-h264"]


def per_clip_bd(records: list[dict], anchor: str, test: str) -> dict:
    """BD-rate (%) of ``test`` against ``anchor`` per clip (PSNR-YUV); NaN where the curves do not overlap."""
    out = {}
    for item in sorted({r["item"] for r in records}):
        def curve(k):
            rs = sorted((r for r in records if r["codec"] == k and r["item"] == item), key=lambda r: r["kbps"])
            return [r["kbps"] for r in rs], [r["psnr-yuv"] for r in rs]

        ra, da = curve(anchor)
        rt, dt = curve(test)
        try:
            out[item] = bd_rate(ra, da, rt, dt)
        except Exception:  # noqa: BLE001 - no overlap / too few points
            out[item] = float("nan")
    return out


def speed(ds, max_frames: int, name: str) -> list[str]:
    """Encode / decode frames per second of the default video model (quality 4) on each clip, one CPU thread,
    model loaded and warmed up before timing (the harness's per-item times include model loading)."""
    import time

    import torch

    from codec.api import decode, encode_video
    from codec.checkpoints import load_model
    from codec.eval.rd import load_item

    torch.set_num_threads(1)
    model = load_model(None, None, "video")
    lines = []
    for path in ds.items:
        clip = load_item("video", str(path), max_frames)
        for ip, label in ((None, "P (intra period 32)"), (1, "all-intra")):
            encode_video(clip, model, intra_period=ip)  # warm-up
            t0 = time.perf_counter()
            data = encode_video(clip, model, intra_period=ip)
            t1 = time.perf_counter()
            decode(data, model)
            t2 = time.perf_counter()
            lines.append(f"| {name} | {ds.rel(path)} | {clip.width}x{clip.height} | {clip.frames} | {label} | "
                         f"{clip.frames / (t1 - t0):.2f} | {clip.frames / (t2 - t1):.2f} |")
    return lines


def write_manifest_points(root, max_frames: int) -> None:
    """The measured mean points of the shipped video ladder into ``checkpoints/manifest.json`` (``rd.<set>``)."""
    from codec.checkpoints import load_manifest, write_manifest

    manifest = load_manifest()
    for name in SETS:
        f = root / "results" / f"{name}-learned" / "video-msh.json"
        if not f.is_file():
            continue
        r = json.loads(f.read_text())["results"]
        n_clips = len(resolve(name).items)
        for m in manifest["models"]:
            if m.get("family") == "video-msh" and m.get("quality") in r["quality"]:
                i = r["quality"].index(m["quality"])
                m.setdefault("rd", {})[name] = {"kbps": round(float(r["kbps"][i]), 2),
                                                "psnr-yuv": round(float(r["psnr-yuv"][i]), 4), "clips": n_clips,
                                                "frames": f"first {max_frames}"}
    write_manifest(manifest)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-frames", type=int, default=32, help="code the first N frames of each clip (default 32)")
    ap.add_argument("--only", default=None, help="comma-separated subset of video,video-h264")
    ap.add_argument("--no-manifest", action="store_true", help="do not write the measured points to the manifest")
    args = ap.parse_args(argv)
    root = repo_root()
    figs, tabs = results_dirs()
    codecs = [get_codec(k) for k in KEYS]
    bd_lines, pts_lines, fps_lines, per_clip_lines = [], [], [], []
    for name in SETS:
        if args.only and name not in args.only.split(","):
            continue
        ds = resolve(name)
        out = root / "results" / f"{name}-learned"
        recs = evaluate(codecs, ds, workers=args.workers, cache_dir=out / "cache", max_frames=args.max_frames)
        res = write_outputs(out, ds, recs, anchors=["video-msh-intra", "x264"])
        for f in out.glob("rd_*.png"):
            shutil.copy(f, figs / f"{name}_learned_{f.name}")
        curves = res["curves"]
        for k in KEYS:
            r = curves[k]["results"]
            for i, q in enumerate(r["quality"]):
                pts_lines.append(f"| {name} | {curves[k]['name']} | {q} | {r['kbps'][i]:.1f} | {r['psnr-yuv'][i]:.2f} "
                                 f"| {r['psnr-y'][i]:.2f} |")
        # BD-rates: per clip, then the mean over clips; and on the mean curves
        for anchor in ("video-msh-intra", "x264", "x265"):
            for test in ("video-msh", "video-msh-intra", "x265"):
                if test == anchor or (anchor == "x265" and test == "x265"):
                    continue
                pc = per_clip_bd(recs, anchor, test)
                vals = [v for v in pc.values() if v == v]
                mean_curve = bd_rate(curves[anchor]["results"]["kbps"], curves[anchor]["results"]["psnr-yuv"],
                                     curves[test]["results"]["kbps"], curves[test]["results"]["psnr-yuv"])
                bd_lines.append(f"| {name} | {test} | {anchor} | {np.mean(vals):+.1f} % ({len(vals)} clips) | "
                                f"{mean_curve:+.1f} % |")
                if anchor == "video-msh-intra" and test == "video-msh" or anchor == "x264" and test == "video-msh":
                    for item, v in pc.items():
                        per_clip_lines.append(f"| {name} | {item} | {test} vs {anchor} | {v:+.1f} % |")
        # speed per clip size: the default model (loaded and warmed up first), one thread, P and all-intra
        fps_lines += speed(ds, args.max_frames, name)
        print(f"{name}: {len(ds.items)} clips done")
    with open(tabs / "video_bd.md", "w") as f:
        f.write(f"| set | codec | anchor | BD-rate PSNR-YUV, mean of per-clip | on the mean curves |\n"
                f"|---|---|---|---:|---:|\n" + "\n".join(bd_lines) + "\n")
    with open(tabs / "video_bd_per_clip.md", "w") as f:
        f.write("| set | clip | comparison | BD-rate (PSNR-YUV) |\n|---|---|---|---:|\n" + "\n".join(per_clip_lines) +
                "\n")
    with open(tabs / "video_points.md", "w") as f:
        f.write("| set | codec | point | kbps | PSNR-YUV | PSNR-Y |\n|---|---|---:|---:|---:|---:|\n" +
                "\n".join(pts_lines) + "\n")
    with open(tabs / "video_fps.md", "w") as f:
        f.write("| set | clip | size | frames | coding (video-msh-q4) | encode frames/s | decode frames/s |\n"
                "|---|---|---|---:|---|---:|---:|\n" + "\n".join(fps_lines) + "\n")
    print(f"tables -> {tabs}/video_*.md")
    if not args.no_manifest:
        write_manifest_points(root, args.max_frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
