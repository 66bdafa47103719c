"""``python -m codec.eval.mpq``: run MPQ tasks over codecs and write the outputs (see :mod:`codec.eval.mpq`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codec.errors import CodecError
from codec.eval.mpq import __doc__ as _DOC
from codec.eval.mpq.report import _docs, write_outputs
from codec.eval.mpq.runner import run
from codec.eval.mpq.tasks import TASKS, get_task
from codec.eval.rd import parse_points


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codec.eval.mpq", description=_DOC.split("\n\n")[0])
    ap.add_argument("--tasks", default="cifar10", help=f"comma-separated tasks ({', '.join(TASKS)})")
    ap.add_argument("--codecs", default="jpeg,webp,msh", help="comma-separated RD codecs (classical or shipped)")
    ap.add_argument("--points", default=None, help="per-codec points, e.g. 'jpeg=5,10,30;msh=1,3,5'")
    ap.add_argument("--limit", type=int, default=None, help="at most N items per task")
    ap.add_argument("--out", default="results/mpq")
    ap.add_argument("--docs", action="store_true", help="also write the docs' tables and figures "
                    "(docs/results/tables/mpq_*.md, docs/results/figures/mpq_*.png)")
    args = ap.parse_args(argv)
    import torch

    from codec.eval.baselines import get_codec

    torch.set_num_threads(1)
    try:
        tasks = [get_task(t.strip()) for t in args.tasks.split(",") if t.strip()]
        codecs = [get_codec(c.strip()) for c in args.codecs.split(",") if c.strip()]
        recs = run(tasks, codecs, parse_points(args.points), args.limit)
        res = write_outputs(Path(args.out), recs)
    except CodecError as e:
        print(f"mpq: error: {e}", file=sys.stderr)
        return 2
    if args.docs:
        _docs(Path(args.out), res)
    for r in res["rows"]:
        rate = f"{r['bpp']:.3f} bpp" if "bpp" in r else f"{r['kbps']:.2f} kbps"
        print(f"{r['task']:8s} {r['codec']:8s} {r['point']!s:>5s} {rate}  {r['score']:.3f} (clean "
              f"{r['clean_score']:.3f}, agreement {r['agreement']:.3f})")
    print(json.dumps(res["correlations"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
