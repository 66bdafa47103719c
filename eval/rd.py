"""The rate-distortion harness: every codec, every operating point, every item; real bytes, decoded and measured.

    python -m codec.eval.rd --dataset kodak --codecs jpeg,webp,avif,hevc,av1 --out results/kodak --workers 2
    codec eval --dataset clic ...                   (the same, through the CLI)

For each (codec, point, item): encode -> bytes -> decode -> metrics (:mod:`codec.eval.metrics`), timing the encode
and the decode. Rates come only from ``len(bytes)``: bpp over the original pixel count for images, kbps over the
original duration for audio and video.

Outputs under ``--out``:
  - ``<codec>.json``: CompressAI's results layout (``name``, ``description``, ``results`` with one list entry per
    operating point: ``bpp``, ``psnr-rgb``, ``ms-ssim-rgb``, ``encoding_time``, ``decoding_time``; audio: ``kbps``,
    ``si-sdr``, ``mel-distance`` [, ``pesq``, ``stoi``]; video: ``kbps``, ``psnr-y/u/v``, ``psnr-yuv``), dataset means;
  - ``per_item.csv``: one row per (codec, point, item);
  - ``rd_psnr.png`` / ``rd_msssim.png`` (images), ``rd_mel.png`` / ``rd_sisdr.png`` (audio), ``rd_psnr_yuv.png``
    (video): learned codecs solid, classical dashed, published reference curves dotted;
  - ``bd_rate.md``: BD-rate of every codec against the anchors (PSNR and, for images, MS-SSIM in dB).
A cache (``<out>/cache/*.jsonl``, keyed by the codec's identity and versions, the point and the item's path, size
and mtime) makes a re-run compute only what is missing.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path

import numpy as np

from codec.errors import CodecError
from codec.eval import metrics as M
from codec.eval.baselines import RDCodec, available_codecs, get_codec
from codec.eval.datasets import Dataset, raw_video_geometry, resolve

RATE_KEY = {"image": "bpp", "audio": "kbps", "video": "kbps"}
MEAN_KEYS = {
    "image": ["bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"],
    "audio": ["kbps", "si-sdr", "mel-distance", "pesq", "stoi", "encoding_time", "decoding_time"],
    "video": ["kbps", "psnr-y", "psnr-u", "psnr-v", "psnr-yuv", "encoding_time", "decoding_time"],
}


# --------------------------------------------------------------------------------------------------------------
# one measurement
# --------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def load_item(modality: str, path: str, max_frames: int | None = None):
    from codec import media

    p = Path(path)
    if modality == "image":
        return media.load_image(p)
    if modality == "audio":
        return media.load_audio(p)
    if p.suffix.lower() == ".yuv":
        w, h, fps = raw_video_geometry(p)
        return media.load_video(p, size=(w, h), fps=fps, max_frames=max_frames)
    return media.load_video(p, max_frames=max_frames)


def measure(codec: RDCodec, item, point, with_msssim: bool = True, speech: bool = False, small_images: bool = False,
            lpips: bool = False, keep_reconstruction: bool = False):
    """Code one item at one point through the codec's real bitstream and measure it: rate from the bytes, the
    modality's fidelity metrics, coding times. ``small_images``, ``lpips``: see :func:`metrics.image_quality`.
    Returns the record, or (record, reconstruction) with ``keep_reconstruction`` (the MPQ suite feeds it to a
    perception model)."""
    t0 = time.perf_counter()
    data = codec.encode(item, point)
    t1 = time.perf_counter()
    rec = codec.decode(data, item)
    t2 = time.perf_counter()
    out = {"bytes": len(data), "encoding_time": t1 - t0, "decoding_time": t2 - t1}
    if codec.modality == "image":
        h, w = item.shape[:2]
        if rec.shape != item.shape:
            raise CodecError(f"{codec.key}: decoded shape {rec.shape} != original {item.shape}")
        out.update({"bpp": len(data) * 8 / (h * w), **M.image_quality(item, rec, with_msssim, small_images, lpips),
                    "height": h, "width": w})
    elif codec.modality == "audio":
        samples, sr = item
        dur = samples.shape[0] / sr
        out.update({"kbps": len(data) * 8 / dur / 1000, "duration": dur, "sample_rate": sr,
                    "channels": samples.shape[1], **M.audio_quality(samples, rec, sr)})
        if speech:
            out.update(M.speech_metrics(samples, rec, sr))
    else:
        if rec.frames != item.frames or (rec.height, rec.width) != (item.height, item.width):
            raise CodecError(f"{codec.key}: decoded {rec.frames} frames of {rec.width}x{rec.height}, the original "
                             f"has {item.frames} of {item.width}x{item.height}")
        dur = item.frames / item.fps
        out.update({"kbps": len(data) * 8 / dur / 1000, "frames": item.frames, "height": item.height,
                    "width": item.width, "fps": item.fps})
        out.update(M.psnr_yuv420(item, rec))
    return (out, rec) if keep_reconstruction else out


def _task(codec: RDCodec, point, path: str, with_msssim: bool, max_frames, speech: bool):
    import torch

    torch.set_num_threads(1)
    item = load_item(codec.modality, path, max_frames)
    return measure(codec, item, point, with_msssim, speech)


# --------------------------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------------------------
class ResultCache:
    def __init__(self, folder: Path | None):
        self.folder = folder
        if folder:
            folder.mkdir(parents=True, exist_ok=True)

    def _file(self, codec: RDCodec) -> Path:
        h = hashlib.sha1(codec.identity().encode()).hexdigest()[:12]
        return self.folder / f"{codec.key}-{h}.jsonl"

    @staticmethod
    def key(point, path: Path, max_frames, with_msssim, speech=False) -> str:
        st = path.stat()
        return (f"{point}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{max_frames}|{int(with_msssim)}"
                f"{'|speech' if speech else ''}")

    def load(self, codec: RDCodec) -> dict:
        if not self.folder or not self._file(codec).exists():
            return {}
        out = {}
        for line in self._file(codec).read_text().splitlines():
            try:
                r = json.loads(line)
                out[r["_key"]] = r
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut short by an interrupted run: recomputed
        return out

    def append(self, codec: RDCodec, rec: dict) -> None:
        if self.folder:
            with open(self._file(codec), "a") as f:
                f.write(json.dumps(rec, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o))


# --------------------------------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------------------------------
def evaluate(codecs: list[RDCodec], dataset: Dataset, points: dict | None = None, workers: int = 1,
             cache_dir: Path | None = None, progress: bool = True, with_msssim: bool = True,
             max_frames: int | None = None, speech_metrics: bool | None = None) -> list[dict]:
    """Run every codec at every point on every item; returns one record per (codec, point, item).

    ``speech_metrics``: PESQ / STOI for audio (default: on for the named speech sets)."""
    from tqdm import tqdm

    speech = dataset.speech if speech_metrics is None else speech_metrics
    cache = ResultCache(cache_dir)
    records, todo = [], []
    for codec in codecs:
        if codec.modality != dataset.modality:
            raise CodecError(f"codec {codec.key!r} codes {codec.modality}, dataset {dataset.name!r} is "
                             f"{dataset.modality}")
        cached = cache.load(codec)
        for point in (points or {}).get(codec.key) or codec.ladder():
            for path in dataset.items:
                base = {"codec": codec.key, "name": codec.name, "learned": codec.learned, "point": point,
                        "item": dataset.rel(path)}
                k = ResultCache.key(point, path, max_frames, with_msssim, speech)
                if k in cached:
                    records.append({**cached[k], **base})
                else:
                    todo.append((codec, point, path, base, k))
    bar = tqdm(total=len(todo), desc=f"{dataset.name}", unit="enc", disable=not progress or not todo,
               file=sys.stderr)

    def done(codec, base, k, res):
        rec = {**base, **res, "_key": k}
        cache.append(codec, rec)
        records.append(rec)
        bar.update(1)

    if workers <= 1:
        for codec, point, path, base, k in todo:
            done(codec, base, k, _task(codec, point, str(path), with_msssim, max_frames, speech))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
            futs = {ex.submit(_task, c, p, str(path), with_msssim, max_frames, speech): (c, b, k)
                    for c, p, path, b, k in todo}
            for f in as_completed(futs):
                c, b, k = futs[f]
                done(c, b, k, f.result())
    bar.close()
    return records


def aggregate(records: list[dict], codec_key: str, modality: str) -> dict:
    """Dataset means per operating point, in CompressAI's results layout (points ordered by rate)."""
    rows = [r for r in records if r["codec"] == codec_key]
    if not rows:
        raise CodecError(f"no results for codec {codec_key!r}")
    by_point: dict = {}
    for r in rows:
        by_point.setdefault(r["point"], []).append(r)
    keys = [k for k in MEAN_KEYS[modality] if any(k in r for r in rows)]
    per_point = []
    for p, rs in by_point.items():
        entry = {"point": p, "items": len(rs)}
        for k in keys:
            vals = [r[k] for r in rs if k in r and r[k] is not None and not (isinstance(r[k], float) and
                                                                             math.isnan(r[k]))]
            entry[k] = float(np.mean(vals)) if vals else float("nan")
        per_point.append(entry)
    per_point.sort(key=lambda e: e[RATE_KEY[modality]])
    results = {k: [e[k] for e in per_point] for k in keys}
    results["quality"] = [e["point"] for e in per_point]
    return {"name": rows[0]["name"], "description": f"{rows[0]['name']}, measured by codec.eval.rd on "
            f"{per_point[0]['items']} items; means over items per operating point",
            "learned": bool(rows[0]["learned"]), "results": results}


def write_outputs(out: Path, dataset: Dataset, records: list[dict], anchors: list[str] | None = None,
                  references: list[Path] | None = None, plots: bool = True) -> dict:
    from codec.eval import plots as P
    from codec.eval.bd import bd_table, load_results

    out.mkdir(parents=True, exist_ok=True)
    mod = dataset.modality
    keys = list(dict.fromkeys(r["codec"] for r in records))
    curves = {}
    for k in keys:
        agg = aggregate(records, k, mod)
        curves[k] = agg
        (out / f"{k}.json").write_text(json.dumps(agg, indent=2, default=_json_default) + "\n")
    cols = ["codec", "point", "item"] + [c for c in ["bytes", RATE_KEY[mod]] + MEAN_KEYS[mod][1:] +
                                         ["height", "width", "duration", "frames"] if any(c in r for r in records)]
    with open(out / "per_item.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in sorted(records, key=lambda r: (r["codec"], str(r["point"]), r["item"])):
            w.writerow({c: r.get(c, "") for c in cols})
    refs = [load_results(p) for p in (references or [])]
    if plots:
        P.plot_dataset(out, dataset.name, mod, curves, refs)
    tables = {}
    anchors = [a for a in (anchors or keys[:1]) if a in curves]
    named = {curves[k]["name"]: curves[k]["results"] for k in keys}
    anchor_names = [curves[a]["name"] for a in anchors]
    if mod == "image":
        tables["psnr"] = bd_table(named, anchor_names, "bpp", "psnr-rgb")
        if any(v == v for c in curves.values() for v in c["results"].get("ms-ssim-rgb", [])):
            tables["ms-ssim"] = bd_table(named, anchor_names, "bpp", "ms-ssim-rgb")
    elif mod == "video":
        tables["psnr-yuv"] = bd_table(named, anchor_names, "kbps", "psnr-yuv")
    else:
        tables["si-sdr"] = bd_table(named, anchor_names, "kbps", "si-sdr")
    with open(out / "bd_rate.md", "w") as f:
        for t, md in tables.items():
            f.write(f"BD-rate ({t}, Bjøntegaard cubic) on {dataset.name}, {len(dataset.items)} items; negative = "
                    f"fewer bits than the anchor\n\n{md}\n\n")
    return {"curves": curves, "tables": tables}


# --------------------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------------------
def parse_points(spec: str | None) -> dict:
    out = {}
    for part in (spec or "").split(";"):
        if not part.strip():
            continue
        k, _, v = part.partition("=")
        if not v:
            raise CodecError(f"--points: expected CODEC=P1,P2,... got {part!r}")
        out[k.strip()] = [float(x) if "." in x else int(x) for x in v.split(",") if x.strip()]
    return out


def build_parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="python -m codec.eval.rd", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True,
                   help="named set (kodak, clic, bsds500-test, speech, librispeech, music, video, video-h264) or a "
                        "folder")
    p.add_argument("--codecs", default=None, help="comma-separated codec keys (default: every classical codec of "
                   "the dataset's modality)")
    p.add_argument("--points", default=None, help="operating points per codec, e.g. 'jpeg=10,50,90;webp=20,80'")
    p.add_argument("--out", default=None, help="output folder (default: results/<dataset>)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--limit", type=int, default=None, help="use only the first N items")
    p.add_argument("--max-frames", type=int, default=None, help="video: code at most N frames per clip")
    p.add_argument("--anchor", default=None, help="comma-separated BD-rate anchors (default: the first codec)")
    p.add_argument("--reference", action="append", default=[],
                   help="a CompressAI results JSON to draw for comparison (repeatable)")
    p.add_argument("--no-msssim", action="store_true", help="skip MS-SSIM (faster)")
    p.add_argument("--speech-metrics", action="store_true", default=None,
                   help="audio: compute PESQ / STOI (default: on for the named speech sets only)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    ds = resolve(args.dataset, limit=args.limit)
    keys = args.codecs.split(",") if args.codecs else available_codecs(ds.modality)
    codecs = [get_codec(k.strip()) for k in keys if k.strip()]
    out = Path(args.out or f"results/{ds.name}")
    records = evaluate(codecs, ds, parse_points(args.points), workers=args.workers,
                       cache_dir=None if args.no_cache else out / "cache", progress=not args.quiet,
                       with_msssim=not args.no_msssim, max_frames=args.max_frames,
                       speech_metrics=args.speech_metrics)
    res = write_outputs(out, ds, records, anchors=args.anchor.split(",") if args.anchor else None,
                        references=[Path(r) for r in args.reference], plots=not args.no_plots)
    rk = RATE_KEY[ds.modality]
    for k, c in res["curves"].items():
        r = c["results"]
        cols = [x for x in MEAN_KEYS[ds.modality] if x in r and x != rk]
        print(f"\n{c['name']}  ({len(ds.items)} items)")
        print(f"  {'point':>7} {rk:>8} " + " ".join(f"{x:>14}" for x in cols))
        for i, q in enumerate(r["quality"]):
            print(f"  {q!s:>7} {r[rk][i]:8.4f} " + " ".join(f"{r[x][i]:14.4f}" for x in cols))
    for t, md in res["tables"].items():
        print(f"\nBD-rate ({t}, cubic):\n{md}")
    print(f"\nwrote {out}/")
    return 0


def main(argv=None) -> int:
    from codec.errors import CodecError as _E

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except _E as e:
        print(f"codec eval: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
