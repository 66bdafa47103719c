"""Speech training recipes side by side: each candidate's training checkpoint measured on held-out speech.

    python -m codec.eval.reproduce.speech_recipes [--runs runs/speech] [--set speech-test-subset] [--n-q 3,6,12]
                                                  [--baseline rvqgan-speech16k-f0]

The candidates are the runs under ``--runs`` (one folder per recipe, trained by ``train/fit.py`` with
``train/configs/rvqgan-speech16k-ls.yaml`` and one of ``train/configs/speech/*.yaml``, each for the same wall time:
``--trainer.max_time``). For each, the last checkpoint codes every held-out file (16 kHz mono, as the CLI codes
it) with the first n_q codebooks and decodes it; the table gives mel distance, SI-SDR, PESQ-WB and STOI per n_q,
with the training time, batches and generator size the checkpoint records. ``--baseline`` adds rows for shipped
models (names or exported FILE.pt) measured the same way: where candidates that start from one begin. Tokens are
not entropy-coded here (the recipes share the quantiser, so the rate is the nominal n_q x 0.5 kbps for all of them);
``python -m codec.eval.reproduce.rvqgan`` measures the shipped model from real bytes.

Writes ``docs/results/tables/speech_recipes.md`` and ``results/speech_recipes.json``.
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


def heldout_audio(items, sample_rate: int) -> list[tuple[str, torch.Tensor]]:
    """(name, (1, 1, T) float tensor) of each file at ``sample_rate``, mixed to mono, as the CLI reads it."""
    from codec.api import _resample
    from codec.media import load_audio

    out = []
    for p in items:
        a, sr = load_audio(p)
        x = _resample(torch.from_numpy(np.ascontiguousarray(a.T)).float(), sr, sample_rate).mean(0, keepdim=True)
        out.append((Path(p).name, x[None]))
    return out


def heldout_scores(decode, signals, sample_rate: int, n_qs) -> dict:
    """Mean mel distance, SI-SDR, PESQ-WB and STOI over ``signals`` of ``decode(x, n_q) -> (1, 1, T)`` at each
    n_q: ``{n_q: {metric: value}}``."""
    from codec.eval.metrics import mel_distance, si_sdr, speech_metrics

    out = {}
    for n_q in n_qs:
        acc: dict[str, list] = {}
        for _, x in signals:
            with torch.no_grad():
                y = decode(x, n_q)
            y = y[..., :x.shape[-1]]
            if y.shape[-1] < x.shape[-1]:  # an implementation that loses samples at odd strides (DAC 1.0.0)
                y = torch.nn.functional.pad(y, (0, x.shape[-1] - y.shape[-1]))
            ref, est = x[0, 0].numpy(), y[0, 0].clamp(-1, 1).numpy()
            vals = {"mel-distance": mel_distance(ref, est, sample_rate), "si-sdr": si_sdr(ref, est),
                    **speech_metrics(ref, est, sample_rate)}
            for k, v in vals.items():
                acc.setdefault(k, []).append(v)
        out[n_q] = {k: float(np.mean(v)) for k, v in acc.items()}
    return out


def load_training_checkpoint(path: Path):
    """(model in eval mode, training record) of a ``train/fit.py`` checkpoint of a codec."""
    from codec.export import _load, _source

    src = _source(path, _load(path))
    model = src["model"]
    model.load_weights(src["state_dict"])
    return model.eval(), src["training"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="runs/speech")
    ap.add_argument("--set", default="speech-test-subset")
    ap.add_argument("--n-q", default="3,6,12")
    ap.add_argument("--only", default=None, help="comma-separated run names (default: every run with a checkpoint)")
    ap.add_argument("--out", default="speech_recipes")
    ap.add_argument("--baseline", default=None,
                    help="comma-separated shipped models (names or FILE.pt) measured first, as rows of their own")
    args = ap.parse_args(argv)
    from codec.eval.datasets import resolve

    root = Path(args.runs)
    names = args.only.split(",") if args.only else sorted(
        p.parent.parent.name for p in root.glob("*/checkpoints/last.ckpt"))
    if not names:
        print(f"no runs with checkpoints/last.ckpt under {root}", file=sys.stderr)
        return 2
    n_qs = [int(v) for v in args.n_q.split(",")]
    ds = resolve(args.set)
    rows, signals = {}, None
    cache_dir = repo_root() / "results" / "speech_recipes_cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    baselines = args.baseline.split(",") if args.baseline else []
    for name in baselines + names:
        if name in baselines:
            from codec.checkpoints import load_model, resolve_entry

            model = load_model(name, None, "audio").eval()
            rec = model.training_info
            f = Path(name)
            ck = f if f.is_file() else repo_root() / "checkpoints" / resolve_entry(name, None, "audio")["file"]
        else:
            ck = root / name / "checkpoints" / "last.ckpt"
            model, rec = load_training_checkpoint(ck)
        # scores of this checkpoint (by size and mtime) on this set, per n_q, reused when measured before
        cache = cache_dir / f"{Path(name).stem}.json"
        key = f"{args.set}|{ck.stat().st_size}|{ck.stat().st_mtime_ns}"
        stored = json.loads(cache.read_text()) if cache.is_file() else {}
        stored = stored if stored.get("key") == key else {"key": key, "scores": {}}
        todo = [q for q in n_qs if str(q) not in stored["scores"]]
        if todo:
            if signals is None:
                signals = heldout_audio(ds.items, model.sample_rate)
            new = heldout_scores(lambda x, q: model.from_tokens(model.tokens(x, q), x.shape[-1]), signals,
                                 model.sample_rate, todo)
            stored["scores"].update({str(k): v for k, v in new.items()})
            cache.write_text(json.dumps(stored))
        scores = {q: stored["scores"][str(q)] for q in n_qs}
        params = sum(p.numel() for p in model.encoder.parameters()) + sum(
            p.numel() for p in model.decoder.parameters()) + sum(p.numel() for p in model.quantizer.parameters())
        rows[name] = {"decoder": rec.get("decoder", "dac"), "loss": rec.get("loss"), "batches": rec.get("batches"),
                      "train_seconds": rec.get("train_seconds"), "hardware": rec.get("hardware"),
                      "params": params, "scores": {str(k): v for k, v in scores.items()}}
        print(name, json.dumps(rows[name]["scores"]), flush=True)
    out_json = repo_root() / "results" / f"{args.out}.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"set": args.set, "files": len(ds.items), "runs": rows}, indent=1))
    tabs = results_dirs()[1]
    lines = [f"Held-out set `{args.set}` ({len(ds.items)} files), decoded from the first n_q codebooks (nominal "
             f"n_q x 0.5 kbps). Regenerate: `python -m codec.eval.reproduce.speech_recipes --runs {args.runs} "
             f"--set {args.set} --only {','.join(names)} --n-q {args.n_q} --out {args.out}"
             + (f" --baseline {args.baseline}" if baselines else "") + "`.\n",
             "| recipe | decoder | generator params | batches | train s | n_q | mel distance | SI-SDR [dB] | PESQ-WB "
             "| STOI |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        for q, s in r["scores"].items():
            lines.append(f"| {name} | {r['decoder']} | {r['params'] / 1e6:.2f} M | {r['batches']} | "
                         f"{r['train_seconds']:.0f} | {q} | {s['mel-distance']:.3f} | {s['si-sdr']:.2f} | "
                         f"{s.get('pesq', float('nan')):.2f} | {s.get('stoi', float('nan')):.3f} |")
    lines.append("\nLosses: " + "; ".join(f"{n}: {r['loss']}" for n, r in rows.items()))
    (tabs / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {tabs / (args.out + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
