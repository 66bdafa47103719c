"""Image coding speed: our MeanScaleHyperprior against CompressAI's MeanScaleHyperprior of the same size, same run.

    python -m codec.eval.bench_image                 # default shipped model, all 24 Kodak images, one CPU thread
    python -m codec.eval.bench_image --limit 4 --model msh-q5

Both sides hold the same weights (ours loaded from the shipped checkpoint; CompressAI's model gets our state_dict and
its own ``update()``) and run on one CPU thread. Ours is the full ``codec.api`` path (tensor conversion, transforms,
symbols and indexes, ``codec.entropy`` coding, container with checksums); CompressAI's is its own
``compress()`` / ``decompress()`` (its bundled rANS). Times are medians over ``--repeats`` runs per image, and the
printed ratio is ours / CompressAI's (target: at most 1.1x).
"""

from __future__ import annotations

import argparse
import statistics
import time


def _median_time(fn, repeats: int) -> tuple[float, object]:
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.eval.bench_image", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="shipped model name or family (default: the default image model)")
    p.add_argument("--quality", type=int, default=None)
    p.add_argument("--dataset", default="kodak")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import numpy as np
    import torch
    import compressai.models.google as google

    from codec.api import decode, encode_image
    from codec.checkpoints import load_model
    from codec.eval.datasets import resolve
    from codec.media import load_image

    torch.set_num_threads(args.threads)
    ours = load_model(args.model, args.quality, "image")
    cfg = ours.config()
    cai = getattr(google, cfg["class"])(cfg["N"], cfg["M"])
    cai.load_state_dict({k: v for k, v in ours.state_dict().items()})
    cai.eval()
    cai.update(force=True)
    ds = resolve(args.dataset, limit=args.limit)
    print(f"model {ours.model_name} ({cfg['class']}, N={cfg['N']}, M={cfg['M']}), {len(ds.items)} images of "
          f"{ds.name}, {args.threads} thread(s), median of {args.repeats}; torch {torch.__version__}")
    rows = []
    with torch.inference_mode():
        for path in ds.items:
            img = load_image(path)
            x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
            h, w = img.shape[:2]
            pad_h, pad_w = (-h) % 64, (-w) % 64
            xp = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
            ours(x[..., :64, :64])  # warm-up
            te_o, data = _median_time(lambda: encode_image(img, ours), args.repeats)
            td_o, rec = _median_time(lambda: decode(data, ours), args.repeats)
            te_c, comp = _median_time(lambda: cai.compress(xp), args.repeats)
            td_c, _ = _median_time(lambda: cai.decompress(comp["strings"], comp["shape"]), args.repeats)
            cai_bytes = sum(len(s[0]) for s in comp["strings"])
            rows.append((path.name, te_o, td_o, te_c, td_c, len(data), cai_bytes))
            print(f"  {path.name:14s} ours enc {te_o:6.3f} s dec {td_o:6.3f} s | compressai enc {te_c:6.3f} s "
                  f"dec {td_c:6.3f} s | bytes ours {len(data)} (container) compressai {cai_bytes} (strings)",
                  flush=True)
    a = np.array([r[1:5] for r in rows])
    m = a.mean(0)
    print(f"\nmean per image: ours encode {m[0]:.3f} s, decode {m[1]:.3f} s; CompressAI encode {m[2]:.3f} s, "
          f"decode {m[3]:.3f} s")
    print(f"ratio ours / CompressAI: encode {m[0] / m[2]:.3f}x, decode {m[1] / m[3]:.3f}x (target <= 1.1x)")
    print(f"bytes: ours {sum(r[5] for r in rows)} (whole container files), CompressAI {sum(r[6] for r in rows)} "
          "(entropy-coded strings only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
