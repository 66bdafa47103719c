"""Result tables and figures (docs/results/) for the classical audio and video codecs, regenerated from scratch.

    python -m codec.eval.reproduce.av_classical [--workers 2]

Audio: Opus (libopus, VBR) and MP3 (LAME, CBR) over their kbps ladders on LJSpeech (the 32 clips in
../shared/data, 22.05 kHz mono: kbps from the file bytes, SI-SDR, DAC's multi-scale mel distance, and PESQ / STOI
when the ``speech`` extra is installed) and on the librosa music excerpts (44.1 kHz Vorbis sources: note they are
lossy at source). Video: x264 and x265 (preset medium, tune psnr, GOP 32) over a crf ladder on the three raw clips
(kbps from the elementary-stream bytes, PSNR-YUV 4:2:0). Results go to ``results/<dataset>/``; the tables
and figures to ``docs/results/tables`` and ``docs/results/figures``.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from codec.config import repo_root
from codec.eval.baselines import get_codec
from codec.eval.datasets import resolve
from codec.eval.rd import MEAN_KEYS, RATE_KEY, evaluate, write_outputs
from codec.eval.reproduce.common import points_table, results_dirs

RUNS = [("speech", ["opus", "mp3"]), ("music", ["opus", "mp3"]), ("video", ["x264", "x265"])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated subset of speech,music,video")
    args = ap.parse_args(argv)
    root = repo_root()
    figs, tabs = results_dirs()
    for name, keys in RUNS:
        if args.only and name not in args.only.split(","):
            continue
        ds = resolve(name)
        out = root / "results" / name
        recs = evaluate([get_codec(k) for k in keys], ds, workers=args.workers, cache_dir=out / "cache")
        res = write_outputs(out, ds, recs, anchors=[keys[0]])
        for f in out.glob("rd_*.png"):
            shutil.copy(f, figs / f"{name}_classical_{f.name}")
        rk = RATE_KEY[ds.modality]
        cols = [c for c in MEAN_KEYS[ds.modality] if c != rk and any(c in r for r in recs)]
        (tabs / f"{name}_classical_points.md").write_text(
            points_table(res, [(rk, rk, "{:.2f}")] + [(k, k, "{:.3f}") for k in cols]))
        print(f"{name}: {len(ds.items)} items -> {tabs / f'{name}_classical_points.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
