"""ViSQOL for the shipped RVQGAN models next to Opus and MP3, on excerpts of the held-out speech and music.

    python -m codec.eval.reproduce.visqol [--speech-seconds 4] [--music-seconds 10]

ViSQOL v3 in audio mode (48 kHz, the bundled SVR mapping to MOS-LQO, 1..~4.75) through ``visqol-python``, a
pure-Python port of Google's ViSQOL (the C++ tool has no wheel). Every signal is mixed to mono and resampled to
48 kHz before scoring (ViSQOL is a mono, full-band metric), so the 16 kHz speech model is also charged for the band
it cannot code, as in the harness's other speech metrics. Audio mode is used for speech too (DAC reports ViSQOL the
same way); speech mode would need the TFLite lattice model (``ai-edge-litert``), and its polynomial fallback
over-predicts by 1-2 MOS points, so it is not used.

The port runs at about 2x real time on one CPU thread, so each codec codes and is scored on an excerpt of every
held-out item: the first ``--speech-seconds`` of each of the 11 speech files and ``--music-seconds`` from 30 s into
each of the two music tracks. kbps are from the real bytes of those excerpts. Table: ``docs/results/tables/visqol.md``;
raw numbers ``results/visqol/visqol.json``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from codec.config import repo_root
from codec.errors import CodecError

JOBS = {  # set -> (our shipped models, their points, [(classical codec, points)], excerpt start s)
    "speech-test-visqol": (["rvqgan-speech16k-f0"], [1.5, 3, 6],
                           [("opus", [6, 8]), ("mp3", [8])], 0.0),
    "speech-heldout": (["rvqgan-speech16k"], [1.5, 3, 6], [("opus", [6, 8, 12]), ("mp3", [8, 16])], 0.0),
    "music-heldout": (["rvqgan-music24k-stereo-vocos-gan", "rvqgan-music24k-stereo"], [3, 6, 12],
                      [("opus", [6, 12, 16]), ("mp3", [32])], 30.0),
}
VISQOL_RATE = 48000


def visqol_api():
    """A ViSQOL audio-mode scorer, or a CodecError naming the extra to install."""
    try:
        from visqol import VisqolApi
    except ImportError as e:
        raise CodecError(f"ViSQOL needs visqol-python (pip install -e '.[speech]'): {e}") from None
    api = VisqolApi()
    api.create(mode="audio")
    return api


def to_visqol(samples: np.ndarray, sr: int) -> np.ndarray:
    """Mono float64 at 48 kHz, as ViSQOL's audio mode expects."""
    import torch
    import torchaudio

    x = torch.from_numpy(np.asarray(samples, dtype=np.float32).reshape(len(samples), -1).mean(axis=1))
    if sr != VISQOL_RATE:
        x = torchaudio.functional.resample(x, sr, VISQOL_RATE)
    return x.double().numpy()


def visqol_mos(api, reference: np.ndarray, degraded: np.ndarray, sr: int) -> float:
    """MOS-LQO of ``degraded`` against ``reference`` (both (samples, channels) or (samples,) at ``sr``)."""
    n = min(len(reference), len(degraded))
    if n < sr // 2:
        raise CodecError(f"ViSQOL needs at least 0.5 s of audio, got {n / sr:.2f} s")
    return float(api.measure_from_arrays(to_visqol(reference[:n], sr), to_visqol(degraded[:n], sr),
                                         VISQOL_RATE).moslqo)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speech-seconds", type=float, default=4.0)
    ap.add_argument("--music-seconds", type=float, default=10.0)
    ap.add_argument("--limit", type=int, default=None, help="items per set (a quick check)")
    ap.add_argument("--add", action="append", default=[], metavar="SET=MODEL",
                    help="also score MODEL (a shipped name or an exported FILE.pt) on SET, next to its own model")
    ap.add_argument("--sets", default=",".join(JOBS),
                    help="comma-separated sets to measure; the table keeps its rows of the other sets")
    args = ap.parse_args(argv)
    sets = args.sets.split(",")
    unknown = [s for s in sets if s not in JOBS]
    if unknown:
        raise SystemExit(f"visqol: unknown set(s) {unknown}; known: {', '.join(JOBS)}")
    import torch

    from codec.eval.baselines import get_codec
    from codec.eval.datasets import resolve
    from codec.media import load_audio

    torch.set_num_threads(1)
    api = visqol_api()
    rows, raw = [], {}
    for set_name, (models, points, classical, start) in JOBS.items():
        if set_name not in sets:
            continue
        seconds = args.speech_seconds if set_name.startswith("speech") else args.music_seconds
        ds = resolve(set_name, limit=args.limit)
        items = []
        for p in ds.items:
            a, sr = load_audio(p)
            a = np.asarray(a, dtype=np.float32).reshape(len(a), -1)
            s0 = int(start * sr) if len(a) > int((start + seconds) * sr) else 0
            items.append((ds.rel(p), (a[s0: s0 + int(seconds * sr)], sr)))
        total = sum(len(x[0]) / x[1] for _, x in items)
        raw[set_name] = {"excerpt_seconds": seconds, "start": start, "items": len(items), "codecs": {}}
        extra = [(m, points) for st, _, m in (a.partition("=") for a in args.add) if st == set_name]
        for key, pts in [(m, points) for m in models] + extra + classical:
            codec = get_codec(key)
            for point in pts:
                bits, mos = 0, []
                for _, item in items:
                    data = codec.encode(item, point)
                    rec = codec.decode(data, item)
                    rec = rec[0] if isinstance(rec, tuple) else rec
                    bits += len(data) * 8
                    mos.append(visqol_mos(api, item[0], np.asarray(rec), item[1]))
                kbps = bits / total / 1000
                raw[set_name]["codecs"].setdefault(codec.name, []).append(
                    {"point": point, "kbps": kbps, "visqol": float(np.mean(mos)), "per_item": mos})
                rows.append(f"| {set_name} | {codec.name} | {point} | {kbps:.2f} | {np.mean(mos):.3f} |")
                print(rows[-1], flush=True)
        ref = [visqol_mos(api, x[0], x[0], x[1]) for _, x in items[:2]]
        raw[set_name]["reference_vs_itself"] = ref
        rows.append(f"| {set_name} | the reference against itself | - | - | {np.mean(ref):.3f} |")
    out = repo_root() / "results" / "visqol"
    out.mkdir(parents=True, exist_ok=True)
    (out / "visqol.json").write_text(json.dumps(raw, indent=2) + "\n")
    if args.limit:
        return 0
    tab = repo_root() / "docs" / "results" / "tables" / "visqol.md"
    kept = []
    if tab.is_file():  # rows of the sets not measured this time
        kept = [ln for ln in tab.read_text().splitlines()
                if ln.startswith("| ") and ln.split("|")[1].strip() in set(JOBS) - set(sets)]
    tab.write_text(
        f"ViSQOL v3 audio mode (48 kHz, mono mix, SVR mapping; visqol-python 3.8.0), MOS-LQO; excerpts: the first "
        f"{args.speech_seconds:g} s of each held-out speech file, {args.music_seconds:g} s from 30 s into each held-out "
        f"music track; kbps from the real bytes of the excerpts; a reference scored against itself is the ceiling. "
        f"Regenerate: `python -m codec.eval.reproduce.visqol [--sets {','.join(JOBS)}]"
        + "".join(f" --add {a}" for a in args.add) + "`.\n\n"
        "| set | codec | point | kbps | ViSQOL MOS-LQO |\n|---|---|---:|---:|---:|\n" + "\n".join(kept + rows) + "\n")
    print(f"table -> {tab}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
