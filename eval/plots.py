"""RD plots: learned codecs solid, classical dashed, published reference curves dotted."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from codec.eval.bd import msssim_db  # noqa: E402

PANELS = {
    "image": [("bpp", "psnr-rgb", "PSNR-RGB [dB]", "rd_psnr.png"),
              ("bpp", "ms-ssim-rgb", "MS-SSIM [dB]", "rd_msssim.png")],
    "audio": [("kbps", "mel-distance", "multi-scale mel distance (lower is better)", "rd_mel.png"),
              ("kbps", "si-sdr", "SI-SDR [dB]", "rd_sisdr.png")],
    "video": [("kbps", "psnr-yuv", "PSNR-YUV 4:2:0 (6:1:1) [dB]", "rd_psnr_yuv.png")],
}
XLABEL = {"bpp": "bits per pixel (real bytes)", "kbps": "kbit/s (real bytes)"}


def _y(results: dict, key: str):
    v = results.get(key)
    if v is None:
        return None
    return msssim_db(v) if key.startswith("ms-ssim") else v


def plot_dataset(out: Path, dataset: str, modality: str, curves: dict, references: list | None = None) -> list:
    files = []
    for xk, yk, ylabel, fname in PANELS[modality]:
        fig, ax = plt.subplots(figsize=(7, 5))
        drawn = 0
        for c in curves.values():
            y = _y(c["results"], yk)
            if y is None or all(v != v for v in y):
                continue
            ax.plot(c["results"][xk], y, "-" if c.get("learned") else "--", marker="o", ms=3, label=c["name"])
            drawn += 1
        for ref in references or []:
            y = _y(ref["results"], yk)
            if y is not None and xk in ref["results"]:
                ax.plot(ref["results"][xk], y, ":", marker=".", ms=3, label=f"{ref['name']} (CompressAI, published)")
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xlabel(XLABEL[xk])
        ax.set_ylabel(ylabel)
        ax.set_title(f"{dataset}: {ylabel.split(' [')[0]} vs rate")
        ax.grid(True, alpha=0.3)
        if modality == "image":
            ax.set_xlim(0, min(2.5, max(max(c["results"][xk]) for c in curves.values()) * 1.05))
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        files.append(out / fname)
    return files
