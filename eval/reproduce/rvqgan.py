"""RVQGAN measurements (docs/results/), from the shipped checkpoints.

    python -m codec.eval.reproduce.rvqgan [--limit N] [--no-cache] [--no-manifest]

For the many-speaker speech model on held-out speech (``speech-test``: LibriSpeech test-other, 10 speakers x 10
utterances, + 8 LJSpeech files not trained on + the 3 librosa LibriSpeech clips), the first speech model on its
held-out set (``speech-heldout``: the 8 LJSpeech files and the 3 clips) and the two stereo music models (the default
and the one it replaced) on held-out music (``music-heldout``); ``--models`` picks some:

1. RD through the harness, from the real .cdc bytes: kbps, multi-scale mel distance, SI-SDR and (speech) PESQ-WB /
   STOI at three nominal bitrates (a quarter, half and all of the codebooks), next to Opus and MP3 at the bitrates
   they support around ours (Opus's floor is 6 kbps).
2. Entropy coding of the tokens: bits of the rANS token stream against fixed 10-bit codes (what DAC stores), and the
   whole file against the nominal token rate (the container overhead).
3. Real-time factors of ``compress`` / ``decompress`` on one CPU thread (seconds of compute per second of audio).
4. Chunk seams: the chunked decoder's output against decoding the whole file at once (max abs difference).

Tables go to ``docs/results/tables/rvqgan_*.md``; measured points into the manifest (``rd``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from codec.config import repo_root
from codec.eval.baselines import get_codec
from codec.eval.datasets import resolve
from codec.eval.rd import evaluate, write_outputs
from codec.eval.reproduce.common import points_table, results_dirs

JOBS = {  # model -> (held-out set, Opus points, MP3 points)
    "rvqgan-speech16k-f0": ("speech-test", [6, 8, 12, 16], [8, 16, 24]),
    "rvqgan-speech16k": ("speech-heldout", [6, 8, 12, 16], [8, 16, 24]),
    "rvqgan-music24k-stereo": ("music-heldout", [6, 8, 12, 16, 24], [8, 16, 24, 32]),
    "rvqgan-music24k-stereo-vocos-gan": ("music-heldout", [6, 8, 12, 16, 24], [8, 16, 24, 32]),
}


def token_stats(model, items, points) -> dict:
    """Token-stream bits vs fixed-length codes, file vs nominal rate, and 1-thread real-time factors."""
    from codec.api import _resample, decode_audio_payload, encode_audio
    from codec.bitstream import unpack
    from codec.media import load_audio

    torch.set_num_threads(1)
    out = {}
    bits_per_code = float(np.log2(model.codebook_size))
    for kbps in points:
        n_q = model.codebooks_for_kbps(kbps + 1e-6)
        acc = {"seconds": 0.0, "stream_bits": 0, "f0_bits": 0, "file_bits": 0, "fixed_bits": 0, "enc_s": 0.0,
               "dec_s": 0.0}
        for p in items:
            a, sr = load_audio(p)
            t0 = time.perf_counter()
            data = encode_audio(a, sr, model, kbps=kbps + 1e-6)
            t1 = time.perf_counter()
            header, payload = unpack(data)
            t2 = time.perf_counter()
            decode_audio_payload(header, payload, model)
            t3 = time.perf_counter()
            frames = -(-int(round(a.shape[0] * model.sample_rate / sr)) // model.hop)
            acc["seconds"] += a.shape[0] / sr
            acc["stream_bits"] += 8 * len(payload.streams["tokens"])
            acc["f0_bits"] += 8 * len(payload.streams.get("f0", b""))  # the coded f0 track, where the model has one
            acc["file_bits"] += 8 * len(data)
            acc["fixed_bits"] += int(n_q * frames * bits_per_code)
            acc["enc_s"] += t1 - t0
            acc["dec_s"] += t3 - t2
        s = acc["seconds"]
        out[kbps] = {
            "n_q": n_q, "nominal_kbps": model.kbps(n_q), "stream_kbps": acc["stream_bits"] / s / 1000,
            "f0_kbps": acc["f0_bits"] / s / 1000,
            "file_kbps": acc["file_bits"] / s / 1000,
            "saving_vs_fixed_pct": 100 * (1 - acc["stream_bits"] / acc["fixed_bits"]),
            "file_over_stream_pct": 100 * (acc["file_bits"] / acc["stream_bits"] - 1),
            "rtf_encode": acc["enc_s"] / s, "rtf_decode": acc["dec_s"] / s, "seconds": s}
    # one long file: every item back to back (at the model's rate), to separate the container's fixed cost from
    # the per-second rate
    sigs = []
    for p in items:
        a, sr = load_audio(p)
        x = _resample(torch.from_numpy(np.ascontiguousarray(a.T)).float(), sr, model.sample_rate)
        sigs.append(x.mean(0, keepdim=True).repeat(model.channels, 1) if x.shape[0] != model.channels else x)
    long = torch.cat(sigs, 1).T.contiguous().numpy()
    secs = long.shape[0] / model.sample_rate
    rows = {}
    for kbps in points:
        data = encode_audio(long, model.sample_rate, model, kbps=kbps + 1e-6)
        header, payload = unpack(data)
        rows[kbps] = {"seconds": secs, "file_kbps": 8 * len(data) / secs / 1000,
                      "stream_kbps": 8 * len(payload.streams["tokens"]) / secs / 1000,
                      "f0_kbps": 8 * len(payload.streams.get("f0", b"")) / secs / 1000,
                      "container_bytes": len(data) - sum(len(v) for v in payload.streams.values())}
    out["long_file"] = rows
    # chunk seams on the first item
    a, sr = load_audio(items[0])
    x = _resample(torch.from_numpy(np.ascontiguousarray(a.T)).float(), sr, model.sample_rate)
    if x.shape[0] != model.channels:
        x = x.mean(0, keepdim=True).repeat(model.channels, 1)
    codes = model.tokens(x[None])
    ya = model.from_tokens(codes)
    chunk, margin = model.chunk, model.margin
    try:  # the same model decoding the whole file at once
        model.chunk, model.margin = 1 << 30, 0
        yb, codes_whole = model.from_tokens(codes), model.tokens(x[None])
    finally:
        model.chunk, model.margin = chunk, margin
    out["seams"] = {"max_abs_diff_chunked_vs_whole": float((ya - yb).abs().max()), "chunk_frames": chunk,
                    "margin_frames": margin, "item": str(items[0].name),
                    "codes_equal_pct": 100 * float((codes_whole == codes).mean())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--no-manifest", action="store_true")
    ap.add_argument("--models", default=",".join(JOBS))
    ap.add_argument("--set", default=None, help="held-out set for every model asked (default: each model's own)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    root = repo_root()
    tabs = results_dirs()[1]
    out_root = root / "results" / "rvqgan"
    from codec.checkpoints import load_manifest, load_model, write_manifest

    summary = {}
    for name in args.models.split(","):
        if name in JOBS:
            dset, opus, mp3 = JOBS[name]
            # the first model listed for a set owns rvqgan_SET.md
            own = dset if next(k for k, v in JOBS.items() if v[0] == dset) == name else None
        elif name.endswith(".pt") and args.set:  # a candidate file, on a set measured here with its points
            dset = args.set
            own = None
            opus, mp3 = next(((o, m) for d, o, m in JOBS.values() if d == dset), ([6, 8, 12, 16], [8, 16, 24]))
        else:
            raise SystemExit(f"rvqgan: unknown model {name!r}; known: {', '.join(JOBS)} (or FILE.pt with --set)")
        dset = args.set or dset
        ds = resolve(dset, limit=args.limit)
        ours = get_codec(name)
        recs = evaluate([ours, get_codec("opus"), get_codec("mp3")], ds, points={"opus": opus, "mp3": mp3},
                        workers=args.workers, cache_dir=None if args.no_cache else out_root / "cache",
                        speech_metrics=ds.speech)
        # any other model on a set gets its own table (rvqgan_SET_MODEL.md)
        tag = dset if dset == own else f"{dset}_{Path(name).stem}"
        res = write_outputs(out_root / tag, ds, recs, anchors=["opus"])
        speech = ds.speech
        with open(tabs / f"rvqgan_{tag}.md", "w") as f:
            f.write(f"{len(ds.items)} files of `{dset}`; kbps from the real bytes. Regenerate: `python -m "
                    f"codec.eval.reproduce.rvqgan --models {name} --set {dset}`.\n\n")
            f.write(points_table(res, [("kbps", "kbps", "{:.2f}"), ("mel distance", "mel-distance", "{:.3f}"),
                                       ("SI-SDR [dB]", "si-sdr", "{:.2f}")] +
                                 ([("PESQ-WB", "pesq", "{:.2f}"), ("STOI", "stoi", "{:.3f}")] if speech else []) +
                                 [("enc s", "encoding_time", "{:.2f}"), ("dec s", "decoding_time", "{:.2f}")]))
        model = load_model(name, None, "audio")
        st = token_stats(model, ds.items, ours.ladder())
        with open(tabs / f"rvqgan_{tag}.md", "a") as f:
            f.write("\nToken coding and speed (one CPU thread):\n\n| nominal kbps | codebooks | token stream kbps | "
                    "saving vs fixed 10-bit codes | f0 stream kbps | whole file kbps | file over token stream | "
                    "RTF encode | RTF decode |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            for k, v in st.items():
                if k in ("seams", "long_file"):
                    continue
                f.write(f"| {v['nominal_kbps']:.2f} | {v['n_q']} | {v['stream_kbps']:.3f} | "
                        f"{v['saving_vs_fixed_pct']:.2f} % | {v['f0_kbps']:.3f} | {v['file_kbps']:.3f} | "
                        f"{v['file_over_stream_pct']:.1f} % | "
                        f"{v['rtf_encode']:.3f} | {v['rtf_decode']:.3f} |\n")
            lf = st["long_file"]
            secs = next(iter(lf.values()))["seconds"]
            f.write(f"\nOne long file (all {len(ds.items)} items back to back, {secs:.0f} s): " + "; ".join(
                f"nominal {k:g} kbps -> file {v['file_kbps']:.3f} kbps, token stream {v['stream_kbps']:.3f} kbps"
                + (f", f0 stream {v['f0_kbps']:.3f} kbps" if v["f0_kbps"] else "") + " "
                f"(container {v['container_bytes']} B, file {100 * (v['file_kbps'] / v['stream_kbps'] - 1):.2f} % "
                f"over the stream)" for k, v in lf.items()) + ".\n")
            s = st["seams"]
            f.write(f"\nChunked decoding ({s['chunk_frames']} frames + {s['margin_frames']} margin) vs whole-file "
                    f"decoding of {s['item']}: max |difference| {s['max_abs_diff_chunked_vs_whole']:.2e}; "
                    f"chunked encoding gives the same codes for {s['codes_equal_pct']:.2f} % of tokens.\n")
        r = res["curves"][ours.key]["results"]
        summary[name] = {"dataset": dset, "points": [
            {k: float(r[k][i]) for k in ("kbps", "mel-distance", "si-sdr", "pesq", "stoi") if k in r}
            for i in range(len(r["quality"]))], "tokens": st}
        for k in ("opus", "mp3"):
            rr = res["curves"][k]["results"]
            summary[name][k] = [{m: float(rr[m][i]) for m in ("kbps", "mel-distance", "si-sdr", "pesq", "stoi")
                                 if m in rr} for i in range(len(rr["quality"]))]
    if not args.no_manifest and not args.limit:
        manifest = load_manifest()
        for m in manifest["models"]:
            if m["name"] in summary:
                m.setdefault("rd", {})[summary[m["name"]]["dataset"]] = [
                    {k: round(v, 4) for k, v in p.items()} for p in summary[m["name"]]["points"]]
        write_manifest(manifest)
    (out_root).mkdir(parents=True, exist_ok=True)
    (out_root / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
