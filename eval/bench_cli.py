"""Start-up cost of the command line: where the wall time of ``codec encode`` / ``codec decode`` of the sample image
goes, measured in fresh processes (what a user running the command on a folder of files pays per file).

    python -m codec.eval.bench_cli                  # 5 runs of each, medians
    python -m codec.eval.bench_cli --runs 3 --image path/to/image.png

For each command it prints the wall time of the real CLI process, and, from an instrumented child process that
does the same steps, the split: ``import torch``, the rest of the imports, loading the model (network build,
weights, fingerprint), the coding itself (what the CLI reports as "encode/decode X s"), and writing the output.
The figure the issue budget is about is ``overhead = wall - import torch - coding`` (target: at most 1.5 s).
Reference measured in the same run: ``python -c "import torch"``.

It also times the refusal of a mistake (``codec encode`` of a missing file, an ``-o`` named like an image, a
``--quality`` for a single model; ``codec decode`` against a ``--compare`` of another size), which is reported
before torch or a model is loaded, against ``python -c pass`` (the interpreter alone).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(command: str, image: str, data: str, out: str) -> None:
    t = [time.perf_counter()]
    import torch  # noqa: F401  (timed: what every codec command pays first)

    t.append(time.perf_counter())
    from codec.api import decode_image_payload, encode_image
    from codec.bitstream import read_file
    from codec.checkpoints import load_model
    from codec.media import load_image, save_image

    t.append(time.perf_counter())
    if command == "encode":
        model = load_model(None, None, "image")
        rgb = load_image(image)
        t.append(time.perf_counter())
        b = encode_image(rgb, model)
        t.append(time.perf_counter())
        Path(out).write_bytes(b)
    else:
        header, payload = read_file(data)
        model = load_model(header.model, None, "image")
        t.append(time.perf_counter())
        rgb = decode_image_payload(header, payload, model)
        t.append(time.perf_counter())
        save_image(out, rgb)
    t.append(time.perf_counter())
    names = ["import torch", "other imports", "load model", "coding", "write output"]
    print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))


def _wall(cmd: list[str], rc: int = 0) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != rc:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return dt


def main(argv=None) -> int:
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(prog="python -m codec.eval.bench_cli", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--image", default=str(root / "docs" / "sample" / "kodim23.png"))
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    py = sys.executable
    codec = [py, "-m", "codec"]
    with tempfile.TemporaryDirectory() as td:
        cdc, png = str(Path(td) / "a.cdc"), str(Path(td) / "a.png")
        rows = {}
        torch_only = statistics.median(_wall([py, "-c", "import torch"]) for _ in range(args.runs))
        for command in ("encode", "decode"):
            walls, parts = [], []
            for _ in range(args.runs):
                cli = (codec + ["encode", args.image, "-o", cdc, "--force"] if command == "encode" else
                       codec + ["decode", cdc, "-o", png, "--force"])
                walls.append(_wall(cli))
                r = subprocess.run([py, "-m", "codec.eval.bench_cli", "--child", command, args.image, cdc,
                                    str(Path(td) / ("c.cdc" if command == "encode" else "c.png"))],
                                   capture_output=True, text=True, check=True)
                parts.append(json.loads(r.stdout.strip().splitlines()[-1]))
            med = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
            rows[command] = (statistics.median(walls), med)
        from PIL import Image

        small = str(Path(td) / "small.png")
        Image.new("RGB", (50, 40)).save(small)
        mistakes = {
            "encode of a missing file": ["encode", str(Path(td) / "missing.png")],
            "encode -o x.png": ["encode", args.image, "-o", str(Path(td) / "x.png")],
            "encode --model walloc-rgb16x --quality 4": ["encode", args.image, "-o", str(Path(td) / "y.cdc"),
                                                         "--model", "walloc-rgb16x", "--quality", "4"],
            "decode --compare of another size": ["decode", cdc, "-o", str(Path(td) / "z.png"), "--compare", small],
        }
        python_only = statistics.median(_wall([py, "-c", "pass"]) for _ in range(args.runs))
        errors = {k: statistics.median(_wall(codec + v, rc=2) for _ in range(args.runs)) for k, v in mistakes.items()}
    print(f"codec CLI start-up on {Path(args.image).name}, medians of {args.runs} fresh processes each")
    print(f"reference: python -c 'import torch' = {torch_only:.2f} s")
    for command, (wall, med) in rows.items():
        overhead = wall - med["import torch"] - med["coding"]
        print(f"\ncodec {command}: wall {wall:.2f} s; overhead beyond import torch and coding {overhead:.2f} s "
              f"({overhead / wall:.0%} of the wall time)")
        for k, v in med.items():
            print(f"  {k:14s} {v:6.2f} s")
    print(f"\nrefusing a mistake (one line, exit 2), wall time; reference: python -c pass = {python_only:.2f} s")
    for k, v in errors.items():
        print(f"  {k:42s} {v:5.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
