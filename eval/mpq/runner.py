"""The MPQ runner: every item of a task through each codec's real bitstream, measured by the RD harness's own
:func:`codec.eval.rd.measure` (rate from the bytes, PSNR / MS-SSIM / LPIPS, SI-SDR / mel distance), plus the task's
score on the decoded input; then means per (task, codec, point) and rank correlations."""

from __future__ import annotations

import sys

import numpy as np

from codec.errors import CodecError
from codec.eval.mpq.tasks import Task

#: what a record keeps of the harness's measurement
MEASURED = ("bytes", "bpp", "kbps", "psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance")


def run(tasks: list[Task], codecs: list, points: dict | None = None, limit: int | None = None,
        progress: bool = True) -> list[dict]:
    """One record per (task, codec, point, item); codec points default to each codec's ladder."""
    from tqdm import tqdm

    from codec.eval.rd import measure

    records = []
    for task in tasks:
        items = list(task.items(limit))
        clean = {i: task.predict(m) for i, m, _ in items}
        mine = [c for c in codecs if c.modality == task.modality]  # each task runs on the codecs of its modality
        if not mine:
            raise CodecError(f"no codec for task {task.name!r}: it is {task.modality}, codec(s) "
                             f"{', '.join(repr(c.key) for c in codecs)} code {', '.join({c.modality for c in codecs})}")
        for codec in mine:
            ladder = (points or {}).get(codec.key) or codec.ladder()
            bar = tqdm(total=len(ladder) * len(items), desc=f"{task.name}/{codec.key}", disable=not progress,
                       file=sys.stderr, leave=False)
            for p in ladder:
                for i, media, label in items:
                    m, rec = measure(codec, media, p, small_images=True, lpips=True, keep_reconstruction=True)
                    pred = task.predict(rec if task.modality == "image" else (rec, media[1]))
                    r = {"task": task.name, "codec": codec.key, "name": codec.name, "point": p, "item": i,
                         "score": task.score(pred, label), "clean_score": task.score(clean[i], label),
                         "agreement": task.agree(pred, clean[i])}
                    r.update({k: m[k] for k in MEASURED if k in m})
                    records.append(r)
                    bar.update(1)
            bar.close()
    return records


MEANS = ("bpp", "kbps", "score", "clean_score", "agreement", "psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr",
         "mel-distance")


def aggregate(records: list[dict]) -> list[dict]:
    """Means per (task, codec, point), with ``drop = clean_score - score``."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["task"], r["codec"], r["point"]), []).append(r)
    rows = []
    for (task, codec, point), rs in groups.items():
        row = {"task": task, "codec": codec, "name": rs[0]["name"], "point": point, "items": len(rs)}
        for k in MEANS:
            vals = [x[k] for x in rs if k in x and x[k] == x[k]]
            if vals:
                row[k] = float(np.mean(vals))
        row["drop"] = row["clean_score"] - row["score"]
        rows.append(row)
    return rows


def correlations(rows: list[dict]) -> dict:
    """Spearman rank correlation, per task over all (codec, point) rows, between the task drop and each fidelity
    metric (for metrics where higher is better a strong negative correlation means "tracks the drop")."""
    from scipy.stats import spearmanr

    out = {}
    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]
        res = {"points": len(rs)}
        for k in ("psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance", "bpp", "kbps"):
            pairs = [(r["drop"], r[k]) for r in rs if k in r]
            if len(pairs) >= 3:
                rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
                res[k] = float(rho)
        out[task] = res
    return out
