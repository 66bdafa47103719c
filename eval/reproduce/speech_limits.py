"""What limits a speech decoder: its STFT magnitude or its phase, measured by swapping one for the input's.

    python -m codec.eval.reproduce.speech_limits [--models rvqgan-speech16k-f0,FILE.pt,RUN/last.ckpt,...]
                                                 [--set speech-test-subset] [--n-q 12] [--out NAME]

Each held-out file is coded with the first n_q codebooks and decoded (tokens, not entropy-coded bytes: the question
is the decoder's). Then the decoded signal and the input are taken apart by one STFT (window 1024, hop 256, Hann)
and put back together in these ways, each scored like the decoded signal itself (mel distance, SI-SDR, PESQ-WB,
STOI, as ``speech_recipes``):

- decoded magnitude, input phase: what a perfect phase would give this decoder's magnitude;
- input magnitude, decoded phase: what a perfect magnitude would give its phase;
- input magnitude, random phase: the same with no phase information at all;
- input magnitude smoothed over 9 frequency bins (140 Hz: no pitch harmonics), decoded phase;
- input magnitude smoothed over 5 frames (80 ms), decoded phase.

The table also gives the decoded level against the input's, in dB per 1 kHz band, over the frames within 40 dB
of the loudest. Writes ``docs/results/tables/<out>.md`` and ``results/<out>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from codec.config import repo_root
from codec.eval.reproduce.common import results_dirs

N_FFT, HOP = 1024, 256
VARIANTS = ["decoded", "decoded magnitude, input phase", "input magnitude, decoded phase",
            "input magnitude, random phase", "input magnitude without harmonics (9 bins), decoded phase",
            "input magnitude smeared over 5 frames (80 ms), decoded phase"]


def _smooth(mag: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Moving average of a (F, T) magnitude over ``k`` bins (dim 0) or frames (dim 1)."""
    m = mag if dim == 1 else mag.T
    m = torch.nn.functional.avg_pool1d(m[:, None], k, 1, k // 2, count_include_pad=False)[:, 0]
    return m if dim == 1 else m.T


def recombine(x: torch.Tensor, y: torch.Tensor, variant: str, seed: int = 0) -> torch.Tensor:
    """``variant`` (one of VARIANTS) built from input ``x`` and decoded ``y``, both 1-D of the same length."""
    if variant == "decoded":
        return y
    win = torch.hann_window(N_FFT, dtype=x.dtype)
    X, Y = (torch.stft(s, N_FFT, HOP, window=win, return_complex=True) for s in (x, y))
    mag, phase = {
        "decoded magnitude, input phase": lambda: (Y.abs(), X.angle()),
        "input magnitude, decoded phase": lambda: (X.abs(), Y.angle()),
        "input magnitude, random phase": lambda: (
            X.abs(), 2 * np.pi * torch.rand(X.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)),
        "input magnitude without harmonics (9 bins), decoded phase": lambda: (_smooth(X.abs(), 9, 0), Y.angle()),
        "input magnitude smeared over 5 frames (80 ms), decoded phase": lambda: (_smooth(X.abs(), 5, 1), Y.angle()),
    }[variant]()
    return torch.istft(torch.polar(mag, phase), N_FFT, HOP, window=win, length=x.shape[-1])


def band_level_error(x: torch.Tensor, y: torch.Tensor, sample_rate: int) -> list[float]:
    """Mean decoded-minus-input log power [dB] per 1 kHz band over the active frames (within 40 dB of the loudest)."""
    win = torch.hann_window(N_FFT, dtype=x.dtype)
    lx, ly = (10 * (torch.stft(s, N_FFT, HOP, window=win, return_complex=True).abs() ** 2 + 1e-9).log10()
              for s in (x, y))
    active = lx.max(0).values > lx.max() - 40
    d = (ly - lx)[:, active]
    edges = np.linspace(0, d.shape[0], sample_rate // 2000 + 1).astype(int)
    return [float(d[a:b].mean()) for a, b in zip(edges[:-1], edges[1:])]


def limits(decode, signals, sample_rate: int, n_q: int) -> dict:
    """Scores of every variant (``{variant: {metric: mean}}``) and the band level error (``"band_db"``)."""
    from codec.eval.reproduce.speech_recipes import heldout_scores

    decoded = {}

    def dec(x):
        if id(x) not in decoded:
            with torch.no_grad():
                decoded[id(x)] = decode(x, n_q)[0, 0, :x.shape[-1]].float()
        return decoded[id(x)]

    out = {}
    for v in VARIANTS:
        out[v] = heldout_scores(lambda x, q, v=v: recombine(x[0, 0], dec(x), v)[None, None], signals, sample_rate,
                                [n_q])[n_q]
    out["band_db"] = np.mean([band_level_error(x[0, 0], dec(x), sample_rate) for _, x in signals], 0).tolist()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="rvqgan-speech16k-f0")
    ap.add_argument("--set", default="speech-test-subset")
    ap.add_argument("--n-q", type=int, default=12)
    ap.add_argument("--limit", type=int, default=None, help="the first N held-out files only")
    ap.add_argument("--out", default="speech_limits_f0_shipped", help="name of the table and JSON written")
    args = ap.parse_args(argv)
    from codec.checkpoints import load_model
    from codec.eval.datasets import resolve
    from codec.eval.reproduce.speech_recipes import heldout_audio, load_training_checkpoint

    torch.manual_seed(0)
    ds = resolve(args.set, limit=args.limit)
    res = {"set": args.set, "files": len(ds.items), "n_q": args.n_q, "models": {}}
    for name in args.models.split(","):
        # a shipped name, an exported FILE.pt, or a training checkpoint (a candidate run's last.ckpt)
        model = load_training_checkpoint(Path(name))[0] if name.endswith(".ckpt") else load_model(name, None, "audio")
        sr = model.sample_rate
        signals = heldout_audio(ds.items, sr)
        res["models"][name] = limits(lambda x, q: model.from_tokens(model.tokens(x, q), x.shape[-1]), signals, sr,
                                     args.n_q)
        print(name, json.dumps(res["models"][name]), flush=True)
    out = repo_root() / "results" / f"{args.out}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    again = f"--models {args.models} --set {args.set} --n-q {args.n_q} --out {args.out}"
    lines = [f"{len(ds.items)} files of `{args.set}`, first {args.n_q} codebooks, decoded from the tokens; STFT window "
             f"{N_FFT}, hop {HOP}. Regenerate: `python -m codec.eval.reproduce.speech_limits {again}`.\n",
             "| model | signal | mel distance | SI-SDR [dB] | PESQ-WB | STOI |", "|---|---|---:|---:|---:|---:|"]
    for name, r in res["models"].items():
        for v in VARIANTS:
            s = r[v]
            lines.append(f"| {name} | {v} | {s['mel-distance']:.3f} | {s['si-sdr']:.2f} | "
                         f"{s.get('pesq', float('nan')):.2f} | {s.get('stoi', float('nan')):.3f} |")
    lines += ["", "Decoded level minus input level [dB] per 1 kHz band, active frames:", "",
              "| model | " + " | ".join(f"{k}-{k + 1} kHz" for k in range(len(next(iter(res['models'].values()))
                                                                            ["band_db"]))) + " |",
              "|---|" + "---:|" * len(next(iter(res["models"].values()))["band_db"])]
    for name, r in res["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:+.1f}" for v in r["band_db"]) + " |")
    (results_dirs()[1] / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
