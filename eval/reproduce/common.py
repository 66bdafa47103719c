"""What the reproduce scripts share: where results go (``docs/results/``) and the markdown point tables."""

from __future__ import annotations

from pathlib import Path

from codec.config import repo_root

#: (header, results key, format) of the point tables
IMAGE_POINTS = [("bpp", "bpp", "{:.3f}"), ("PSNR-RGB [dB]", "psnr-rgb", "{:.2f}"), ("MS-SSIM", "ms-ssim-rgb", "{:.4f}"),
                ("enc s", "encoding_time", "{:.3f}"), ("dec s", "decoding_time", "{:.3f}")]


def results_dirs() -> tuple[Path, Path]:
    """``(docs/results/figures, docs/results/tables)``, created if needed."""
    figs, tabs = repo_root() / "docs" / "results" / "figures", repo_root() / "docs" / "results" / "tables"
    figs.mkdir(parents=True, exist_ok=True)
    tabs.mkdir(parents=True, exist_ok=True)
    return figs, tabs


def points_table(res: dict, columns: list[tuple[str, str, str]]) -> str:
    """A markdown table with one row per (curve, operating point) of :func:`codec.eval.rd.write_outputs`' result;
    ``columns``: (header, results key, format); a value a curve lacks is shown as ``-``."""
    lines = ["| codec | point | " + " | ".join(h for h, _, _ in columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for c in res["curves"].values():
        r = c["results"]
        for i, q in enumerate(r["quality"]):
            vals = [fmt.format(r[k][i]) if k in r else "-" for _, k, fmt in columns]
            lines.append(f"| {c['name']} | {q} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"
