"""The ``codec`` command line.

    codec info FILE       what a bitstream's header says
    codec models          the checkpoints shipped in checkpoints/manifest.json
    codec eval ...        rate-distortion evaluation (codec.eval.rd)

Errors are one clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys

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


def _cmd_models(args) -> int:
    from codec.checkpoints import load_manifest

    manifest = load_manifest()
    models = manifest.get("models", [])
    if not models:
        print("no models shipped yet (checkpoints/manifest.json is empty)")
        return 0
    for m in models:
        print(f"{m['name']:32s} {m.get('codec', ''):32s} {m.get('file', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codec", description="Learned codecs on one shared rANS entropy layer.")
    sub = p.add_subparsers(dest="command", required=True)
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
