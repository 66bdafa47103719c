"""The ``codec`` command line.

    codec encode IN.png [-o OUT] [--model NAME] [--quality Q] [--force]   image -> bitstream (prints bpp, time)
    codec decode IN [-o OUT.png] [--force]                              bitstream -> image
    codec info FILE       what a bitstream's header says
    codec models          the checkpoints shipped in checkpoints/manifest.json
    codec export CKPT --name NAME [--family F --quality Q]              training checkpoint -> shipped checkpoint
    codec eval ...        rate-distortion evaluation (codec.eval.rd)

No output file is overwritten unless --force is given.

Errors are one clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codec.errors import CodecError


def _cmd_info(args) -> int:
    from codec.bitstream import read_file

    header, payload = read_file(args.file)
    info = header.describe()
    info["streams"] = {k: len(v) for k, v in payload.streams.items()}
    info["ints"] = {k: list(v) for k, v in payload.ints.items()}
    info["payload_bytes"] = payload.num_bytes
    print(json.dumps(info, indent=2))
    return 0


def _out_path(inp: Path, out: str | None, suffix: str) -> Path:
    if out:
        return Path(out)
    p = inp.with_suffix(suffix)
    return p if p != inp else inp.with_name(inp.stem + ".decoded" + suffix)


def _refuse_existing(p: Path, force: bool) -> None:
    if p.exists() and not force:
        raise CodecError(f"{p} exists; pass --force to overwrite it")
    if p.exists() and p.is_dir():
        raise CodecError(f"{p} is a folder")
    if not p.parent.exists():
        raise CodecError(f"output folder {p.parent} does not exist")


def _cmd_encode(args) -> int:
    import time

    from codec.api import encode_image
    from codec.checkpoints import load_model
    from codec.media import load_image

    inp = Path(args.input)
    out = _out_path(inp, args.output, ".cdc")
    if out.resolve() == inp.resolve():
        raise CodecError("the output would overwrite the input")
    _refuse_existing(out, args.force)
    rgb = load_image(inp)
    model = load_model(args.model, args.quality, "image")
    t0 = time.perf_counter()
    data = encode_image(rgb, model)
    dt = time.perf_counter() - t0
    _write_bytes(out, data, args.force)
    h, w = rgb.shape[:2]
    print(f"{inp} -> {out}: {len(data)} bytes, {len(data) * 8 / (h * w):.4f} bpp, {w}x{h}, model "
          f"{model.model_name}, encode {dt:.2f} s")
    return 0


def _write_bytes(p: Path, data: bytes, force: bool) -> None:
    import os

    _refuse_existing(p, force)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def _cmd_decode(args) -> int:
    import time

    from codec.api import decode_image_payload
    from codec.bitstream import read_file
    from codec.checkpoints import load_model
    from codec.media import save_image

    inp = Path(args.input)
    out = _out_path(inp, args.output, ".png")
    if out.exists() and out.resolve() == inp.resolve():
        raise CodecError("the output would overwrite the input")
    _refuse_existing(out, args.force)
    if out.suffix.lower() not in (".png", ".bmp", ".tif", ".tiff", ".ppm"):
        raise CodecError(f"decode writes a lossless image (.png, .bmp, .tif, .ppm), not {out.suffix or 'no suffix'}")
    header, payload = read_file(inp)
    if header.modality != "image":
        raise CodecError(f"{inp} is a {header.modality} bitstream; only image decoding is available so far")
    if args.model:
        model = load_model(args.model, None, "image")
    elif header.model:
        try:
            model = load_model(header.model, None, "image")
        except CodecError as e:
            raise CodecError(f"{inp} needs model {header.model!r}, which cannot be loaded: {e}") from None
    else:
        raise CodecError(f"{inp} does not name its model; pass --model")
    t0 = time.perf_counter()
    rgb = decode_image_payload(header, payload, model)
    dt = time.perf_counter() - t0
    import tempfile

    with tempfile.TemporaryDirectory(dir=out.parent) as td:
        tmp = Path(td) / ("x" + out.suffix)
        save_image(tmp, rgb)
        _write_bytes(out, tmp.read_bytes(), args.force)
    h, w = rgb.shape[:2]
    msg = f"{inp} -> {out}: {w}x{h}, model {header.model}, decode {dt:.2f} s"
    if args.compare:
        from codec.eval.metrics import ms_ssim_rgb, psnr_rgb
        from codec.media import load_image

        ref = load_image(args.compare)
        if ref.shape != rgb.shape:
            raise CodecError(f"--compare image is {ref.shape[1]}x{ref.shape[0]}, the decoded one {w}x{h}")
        bpp = inp.stat().st_size * 8 / (h * w)
        msg += f"; vs {args.compare}: {bpp:.4f} bpp, PSNR {psnr_rgb(ref, rgb):.2f} dB, MS-SSIM {ms_ssim_rgb(ref, rgb):.4f}"
    print(msg)
    return 0


def _cmd_export(args) -> int:
    from codec.checkpoints import export

    e = export(args.checkpoint, args.name, out_dir=args.out_dir, family=args.family, quality=args.quality,
               force=args.force, update_manifest=not args.no_manifest)
    print(f"exported {args.checkpoint} -> {e['file']} ({e['bytes']} bytes, {e['params']} parameters, "
          f"sha256 {e['sha256'][:16]}...)")
    return 0


def _cmd_models(args) -> int:
    from codec.checkpoints import load_manifest

    manifest = load_manifest()
    models = manifest.get("models", [])
    if not models:
        print("no models shipped yet (checkpoints/manifest.json is empty)")
        return 0
    for m in models:
        t = m.get("training", {})
        kodak = m.get("rd", {}).get("kodak", {})
        rd = f"kodak {kodak['bpp']:.3f} bpp {kodak['psnr-rgb']:.2f} dB" if kodak else ""
        print(f"{m['name']:12s} {m.get('codec', ''):22s} q={m.get('quality')!s:4s} lambda={t.get('lambda')!s:8s} "
              f"{m.get('file', ''):14s} {rd}")
    for modality, d in manifest.get("defaults", {}).items():
        print(f"default {modality} model: {d}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codec", description="Learned codecs on one shared rANS entropy layer.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("encode", help="compress an image into a bitstream (prints bpp and time)")
    s.add_argument("input")
    s.add_argument("-o", "--output", help="output file (default: IN with suffix .cdc)")
    s.add_argument("--model", help="shipped model name or family (see `codec models`) or a .pt checkpoint")
    s.add_argument("--quality", type=int, help="quality level within the model family (1 = lowest rate)")
    s.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    s.set_defaults(func=_cmd_encode)
    s = sub.add_parser("decode", help="decompress a bitstream into an image")
    s.add_argument("input")
    s.add_argument("-o", "--output", help="output image (default: IN with suffix .png)")
    s.add_argument("--model", help="a .pt checkpoint to decode with (default: the model the file names)")
    s.add_argument("--compare", metavar="ORIGINAL", help="print bpp, PSNR and MS-SSIM against the original image")
    s.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    s.set_defaults(func=_cmd_decode)
    s = sub.add_parser("export", help="turn a Lightning training checkpoint into a shipped checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("--name", required=True, help="model name, e.g. msh-q3 (the file is NAME.pt)")
    s.add_argument("--family", help="model family, e.g. msh")
    s.add_argument("--quality", type=int, help="quality level within the family (1 = lowest rate)")
    s.add_argument("--out-dir", help="where to write (default: the checkpoints folder; its manifest is updated)")
    s.add_argument("--no-manifest", action="store_true", help="do not add the model to the manifest")
    s.add_argument("--force", action="store_true", help="replace an existing checkpoint of that name")
    s.set_defaults(func=_cmd_export)
    s = sub.add_parser("info", help="print what a bitstream's header says")
    s.add_argument("file")
    s.set_defaults(func=_cmd_info)
    s = sub.add_parser("models", help="list the shipped checkpoints")
    s.set_defaults(func=_cmd_models)
    from codec.eval.rd import build_parser as rd_parser, run as rd_run

    s = sub.add_parser("eval", help="rate-distortion evaluation over a dataset (see python -m codec.eval.rd)")
    rd_parser(s)
    s.set_defaults(func=rd_run)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CodecError as e:
        print(f"codec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
