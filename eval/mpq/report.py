"""MPQ outputs: per-item CSV, means (CSV, JSON), the correlation table, one figure per task, and the docs' copies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from codec.eval.mpq.runner import aggregate, correlations
from codec.eval.mpq.tasks import TASKS


def write_outputs(out: Path, records: list[dict]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows = aggregate(records)
    corr = correlations(rows)
    cols = ["task", "codec", "point", "item", "bytes", "bpp", "kbps", "score", "clean_score", "agreement",
            "psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance"]
    cols = [c for c in cols if any(c in r for r in records)]
    with open(out / "mpq_items.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    mcols = [c for c in ["task", "codec", "name", "point", "items", "bpp", "kbps", "score", "clean_score", "drop",
                         "agreement", "psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance"]
             if any(c in r for r in rows)]
    with open(out / "mpq.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=mcols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "mpq.json").write_text(json.dumps({"rows": rows, "correlations": corr}, indent=2) + "\n")
    keys = [k for k in ("psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance", "bpp", "kbps")
            if any(k in res for res in corr.values())]
    with open(out / "mpq_correlations.md", "w") as f:
        f.write("| task | points | " + " | ".join(f"rho(drop, {k})" for k in keys) + " |\n|---|---:|" +
                "---:|" * len(keys) + "\n")
        for task, res in corr.items():
            f.write(f"| {task} | {res['points']} | " + " | ".join(f"{res[k]:+.2f}" if k in res else "-" for k in keys)
                    + " |\n")
    _plot(out, rows)
    return {"rows": rows, "correlations": corr}


def _plot(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]
        rate = "bpp" if "bpp" in rs[0] else "kbps"
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for codec in dict.fromkeys(r["codec"] for r in rs):
            c = sorted((r for r in rs if r["codec"] == codec), key=lambda r: r[rate])
            ax.plot([r[rate] for r in c], [r["score"] for r in c], "o-", label=c[0]["name"])
        ax.axhline(rs[0]["clean_score"], color="k", ls=":", lw=1, label="clean input")
        ax.set_xlabel(f"{rate} (real bytes)")
        ax.set_ylabel(f"{task} {TASKS[task].metric}" if task in TASKS else task)
        ax.set_title(f"MPQ: {task} on decoded media")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"mpq_{task}.png", dpi=110)
        plt.close(fig)


def _docs(out: Path, res: dict) -> None:
    import shutil

    from codec.config import repo_root

    figs, tabs = repo_root() / "docs" / "results" / "figures", repo_root() / "docs" / "results" / "tables"
    figs.mkdir(parents=True, exist_ok=True)
    tabs.mkdir(parents=True, exist_ok=True)
    for f in out.glob("mpq_*.png"):
        shutil.copy(f, figs / f.name)
    shutil.copy(out / "mpq_correlations.md", tabs / "mpq_correlations.md")
    with open(tabs / "mpq_points.md", "w") as f:
        f.write("| task | codec | point | rate | task metric | drop | agreement with clean | PSNR-RGB or mel distance | "
                "MS-SSIM | LPIPS (alex) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in res["rows"]:
            rate = f"{r['bpp']:.2f} bpp" if "bpp" in r else f"{r['kbps']:.2f} kbps"
            fid = f"{r['psnr-rgb']:.2f} dB" if "psnr-rgb" in r else f"{r.get('mel-distance', float('nan')):.3f}"
            ms = f"{r['ms-ssim-rgb']:.4f}" if "ms-ssim-rgb" in r else ""
            lp = f"{r['lpips']:.3f}" if "lpips" in r else ""
            f.write(f"| {r['task']} | {r['name']} | {r['point']} | {rate} | {r['score']:.3f} | {r['drop']:+.3f} | "
                    f"{r['agreement']:.3f} | {fid} | {ms} | {lp} |\n")
