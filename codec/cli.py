"""The ``codec`` command line.

    codec encode IN.png|IN.wav|IN.mp4|IN.y4m|IN.yuv [-o OUT] [--model NAME] [--quality Q] [--device cpu|cuda]
                 [--force]                                      media -> bitstream
    codec decode IN [-o OUT.png|OUT.wav|OUT.y4m|OUT.mp4] [--device cpu|cuda] [--force]
                                                                bitstream -> image, audio or video
    codec info FILE       what a bitstream's header says
    codec models          the checkpoints shipped in checkpoints/manifest.json
    codec export CKPT -o OUT.pt [--prior JSON] [--weight-bits 8]   training checkpoint -> standalone checkpoint
    codec export CKPT --add-to-manifest --name NAME [--family F --quality Q]   ... added to the shipped models
    codec eval ...        rate-distortion evaluation (codec.eval.rd)

Files decode the same on any machine: see docs/portability.md. No output file is overwritten unless
--force is given.

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


def _parse_size(s: str | None):
    if s is None:
        return None
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise CodecError(f"--size must be WIDTHxHEIGHT (e.g. 352x288), not {s!r}") from None
    if w < 1 or h < 1:
        raise CodecError(f"--size {s}: width and height must be positive")
    return w, h


def _progress(total, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=None)


def _cmd_encode(args) -> int:
    from codec.preflight import encode_plan

    # argument and input errors are reported here, before torch or a model is loaded
    encode_plan(args.input, args.output, args.model, quality=args.quality, kbps=args.kbps,
                size=_parse_size(args.size), fps=args.fps, intra_period=args.intra_period,
                max_frames=args.max_frames, force=args.force)
    from codec.api import encode_file

    r = encode_file(args.input, args.output, args.model, quality=args.quality, kbps=args.kbps, device=args.device,
                    force=args.force, size=_parse_size(args.size), fps=args.fps, intra_period=args.intra_period,
                    max_frames=args.max_frames, progress=_progress)
    head = f"{r['input']} -> {r['output']}: {r['bytes']} bytes"
    if r["modality"] == "image":
        print(f"{head}, {r['bpp']:.4f} bpp, {r['width']}x{r['height']}, model {r['model']}, "
              f"encode {r['seconds']:.2f} s")
    elif r["modality"] == "audio":
        nominal = f" ({r['codebooks']} codebooks, {r['nominal_kbps']:.2f} kbps nominal)" if "codebooks" in r else ""
        print(f"{head}, {r['kbps']:.2f} kbps{nominal}, {r['duration']:.2f} s, {r['channels']} ch, "
              f"{r['sample_rate']} Hz, model {r['model']}, encode {r['seconds']:.2f} s")
    else:
        print(f"{head}, {r['kbps']:.1f} kbps, {r['bpp']:.4f} bpp, {r['frames']} frames {r['width']}x{r['height']} "
              f"at {r['fps']:.3g} fps, model {r['model']}, encode {r['seconds']:.2f} s "
              f"({r['frames'] / r['seconds']:.2f} frames/s)")
    return 0


def _fmt(v, spec: str, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def _cmd_decode(args) -> int:
    from codec.preflight import decode_plan

    # argument, header and --compare errors are reported here, before torch or a model is loaded
    decode_plan(args.input, args.output, args.model, compare=args.compare, force=args.force, blocks=args.blocks)
    from codec.api import decode_file

    r = decode_file(args.input, args.output, args.model, device=args.device, force=args.force,
                    compare=args.compare, progress=_progress, blocks=args.blocks)
    vs = f"; vs {args.compare}: " if args.compare else ""
    notes = f" ({'; '.join(r['notes'])})" if r.get("notes") else ""
    if r["modality"] == "image":
        msg = f"{r['input']} -> {r['output']}: {r['width']}x{r['height']}, model {r['model']}, decode {r['seconds']:.2f} s"
        if "blocks" in r:
            msg += f" (first {r['blocks']} latent blocks)"
        if vs:
            msg += (f"{vs}{r['bpp']:.4f} bpp, PSNR {_fmt(r['psnr-rgb'], '.2f', ' dB')}, "
                    f"MS-SSIM {_fmt(r['ms-ssim-rgb'], '.4f')}{notes}")
    elif r["modality"] == "audio":
        msg = (f"{r['input']} -> {r['output']}: {r['duration']:.2f} s, {r['channels']} ch, {r['sample_rate']} Hz "
               f"{r['sample_format']}, model {r['model']}, decode {r['seconds']:.2f} s")
        if vs:
            msg += (f"{vs}{r['kbps']:.2f} kbps, SI-SDR {_fmt(r['si-sdr'], '.2f', ' dB')}, "
                    f"mel distance {_fmt(r['mel-distance'], '.3f')}{notes}")
    else:
        n = r["frames"]
        msg = (f"{r['input']} -> {r['output']}: {n} frames {r['width']}x{r['height']}, model {r['model']}, decode "
               f"{r['seconds']:.2f} s ({n / r['seconds']:.2f} frames/s)")
        if "psnr_yuv" in r:
            msg += f"{vs}{r['kbps']:.1f} kbps, PSNR-YUV {r['psnr_yuv']:.2f} dB"
    print(msg)
    return 0


def _json_object(text: str | None, flag: str, what: str):
    """A JSON object given on the command line (``--prior``, ``--record``), or None; a one-line error otherwise."""
    if not text:
        return None
    try:
        v = json.loads(text)
    except ValueError as e:
        raise CodecError(f"{flag} must be a JSON object of {what}: {e}") from None
    if not isinstance(v, dict):
        raise CodecError(f"{flag} must be a JSON object of {what}, not {type(v).__name__}")
    return v


def _cmd_export(args) -> int:
    from codec.export import export

    prior = _json_object(args.prior, "--prior", "prior settings")
    extra = _json_object(args.record, "--record", "training-record fields")
    if (args.family or args.quality is not None) and not args.add_to_manifest:
        raise CodecError("--family and --quality describe a shipped model: add --add-to-manifest")
    e = export(args.checkpoint, args.output, name=args.name, family=args.family, quality=args.quality,
               force=args.force, add_to_manifest=args.add_to_manifest, prior=prior, extra=extra,
               weight_bits=args.weight_bits)
    where = " (added to the manifest)" if args.add_to_manifest else ""
    print(f"exported {args.checkpoint} -> {args.output or e['file']}{where}: {e['codec']}, {e['bytes']} bytes, "
          f"{e['params']} parameters, sha256 {e['sha256'][:16]}...")
    return 0


def _cmd_models(args) -> int:
    from codec.checkpoints import all_models

    manifest = all_models()
    models = manifest.get("models", [])
    if not models:
        print("no models shipped yet (checkpoints/manifest.json is empty)")
        return 0
    w = max(24, *(len(m.get("name", "")) for m in models))
    print(f"{'name':{w}s} {'codec':20s} {'family / quality':20s} {'trained for':16s} {'size':>7s}  headline")
    for m in models:
        t = m.get("training", {})
        rd = m.get("rd", {})
        kodak = rd.get("kodak", {})
        audio_set = next((k for k in ("speech-test", "speech-heldout", "music-heldout") if rd.get(k)), None)
        audio = rd.get(audio_set) or {}
        audio = audio if isinstance(audio, list) else [audio] if audio else []  # RVQGAN: one point per bitrate
        video = rd.get("video-h264") or rd.get("video") or {}
        if isinstance(kodak, list) and kodak:  # a variable-rate model: one point per quality
            lo, hi = kodak[0], kodak[-1]
            res = (f"Kodak {lo['bpp']:.3f} to {hi['bpp']:.3f} bpp, {lo['psnr-rgb']:.2f} to {hi['psnr-rgb']:.2f} dB "
                   f"(q1 to q{hi['quality']})")
        elif kodak:
            res = f"Kodak {kodak['bpp']:.3f} bpp, {kodak['psnr-rgb']:.2f} dB"
        elif m.get("modality") == "video":
            res = f"on {m.get('config', {}).get('image_model')}" + (
                f"; {video['kbps']:.0f} kbps, {video['psnr-yuv']:.2f} dB PSNR-YUV" if video else "")
        elif audio:
            res = f"{audio_set}: " + ", ".join(f"{p['kbps']:.1f} kbps mel {p['mel-distance']:.2f}" for p in audio)
        else:
            res = ""
        fam = f"{m['family']} q{m['quality']}" if m.get("family") else "-"
        levels = (m.get("config") or {}).get("qualities")
        if levels:
            fam = f"q1..q{levels} (one model)"
        what = f"lambda {t['lambda']}" if t.get("lambda") is not None else m.get("modality", "")
        where = f" [{m['folder']}]" if m.get("folder") else ""
        size = f"{m['bytes'] / 1e6:.1f} MB" if m.get("bytes") else "?"
        print(f"{m['name']:{w}s} {m.get('codec', '?'):20s} {fam:20s} {what:16s} {size:>7s}  {res}{where}")
    for modality, d in manifest.get("defaults", {}).items():
        name = f"{d['family']} q{d['quality']}" if isinstance(d, dict) and "quality" in d else \
            (d.get("family") if isinstance(d, dict) else d)
        print(f"default {modality} model: {name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from codec import __version__
    from codec.bitstream import FORMAT_VERSION, READ_VERSIONS

    p = argparse.ArgumentParser(prog="codec", description="Learned codecs on one shared rANS entropy layer.")
    p.add_argument("--version", action="version", version=f"codec {__version__} (writes bitstream format "
                   f"{FORMAT_VERSION}, reads {', '.join(map(str, READ_VERSIONS))})")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("encode", help="compress an image, audio or video file into a bitstream (prints the rate "
                       "and time)")
    s.add_argument("input")
    s.add_argument("-o", "--output", help="output file (default: IN with suffix .cdc)")
    s.add_argument("--model", help="shipped model name or family (see `codec models`) or a .pt checkpoint")
    s.add_argument("--quality", type=int, help="quality level within the model family, or the lambda of a "
                   "variable-rate model (1 = lowest rate)")
    s.add_argument("--kbps", type=float, help="audio (RVQGAN): target nominal bitrate; picks the number of codebooks "
                   "(the most whose fixed-length rate fits; entropy coding then lowers the real rate; a model with a coded "
                   "f0 track adds about 0.15 kbps for it)")
    s.add_argument("--size", help="video: frame size WIDTHxHEIGHT of a raw .yuv (I420) input")
    s.add_argument("--fps", type=float, help="video: frame rate of a raw .yuv input (or override the file's)")
    s.add_argument("--intra-period", type=int, help="video: one intra frame per N (default 32; 1 = all intra, "
                   "0 = only the first frame)")
    s.add_argument("--max-frames", type=int, help="video: code at most N frames")
    s.add_argument("--device", help="where the model runs: cpu (default) or cuda; the file decodes on either")
    s.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    s.set_defaults(func=_cmd_encode)
    s = sub.add_parser("decode", help="decompress a bitstream into an image (.png), audio (.wav) or video (.y4m)")
    s.add_argument("input")
    s.add_argument("-o", "--output", help="output file (default: IN with suffix .png for images, .wav for audio, "
                   ".y4m for video; video also .yuv, or .mp4 / .mkv as lossless H.264)")
    s.add_argument("--model", help="a .pt checkpoint to decode with (default: the model the file names)")
    s.add_argument("--compare", metavar="ORIGINAL", help="print the rate and quality (images: bpp, PSNR, MS-SSIM; "
                   "audio: kbps, SI-SDR, mel distance; video: kbps, PSNR-YUV) against the original")
    s.add_argument("--blocks", type=int, help="progressive decoding (hierarchical image models, e.g. qres-vae): decode "
                   "only the first K latent blocks' streams, a coarser image")
    s.add_argument("--device", help="where the model runs: cpu (default) or cuda; files from either decode here")
    s.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    s.set_defaults(func=_cmd_decode)
    s = sub.add_parser("export", help="turn a training checkpoint (train/fit.py) into a standalone checkpoint that "
                       "--model FILE.pt codes with")
    s.add_argument("checkpoint")
    s.add_argument("-o", "--output", help="the .pt file to write (required unless --add-to-manifest)")
    s.add_argument("--add-to-manifest", action="store_true", help="add the model to the shipped models "
                   "(checkpoints/manifest.json; the file is NAME.pt there unless -o is given)")
    s.add_argument("--name", help="model name (default: the output file's stem)")
    s.add_argument("--family", help="with --add-to-manifest: model family, e.g. msh")
    s.add_argument("--quality", type=int, help="with --add-to-manifest: quality level within the family "
                   "(1 = lowest rate)")
    s.add_argument("--force", action="store_true", help="replace an existing output file")
    s.add_argument("--prior", help="new prior settings as JSON, refitted on the model's recorded training data (also "
                   "from a shipped checkpoint). RVQGAN: token prior, e.g. '{\"prior_contexts\": 64, "
                   "\"prior_uniform\": 0.1}'; WaLLoC image model: context model, e.g. '{\"context_cross\": 3}'")
    s.add_argument("--weight-bits", type=int, choices=(16, 8), help="how the parameters are stored: 16 = float16; "
                   "8 = int8 codes with a float32 scale per output channel for matrices and kernels of 1024 values "
                   "or more (about half the file; the weights change, so measure the model again). Default: 16 for "
                   "a training checkpoint, as stored for a shipped one")
    s.add_argument("--record", help="extra fields for the training record (checkpoint and manifest) as JSON, e.g. "
                   "how earlier stages were trained: '{\"note\": \"...\", \"steps_total\": 11250}'")
    s.set_defaults(func=_cmd_export)
    s = sub.add_parser("info", help="print what a bitstream's header says")
    s.add_argument("file")
    s.set_defaults(func=_cmd_info)
    s = sub.add_parser("models", help="list the shipped checkpoints")
    s.set_defaults(func=_cmd_models)
    s = sub.add_parser("eval", help="rate-distortion evaluation over a dataset (see python -m codec.eval.rd)",
                       add_help=False)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=_cmd_eval)
    return p


def _cmd_eval(args) -> int:
    """``codec eval ...``: the RD evaluation's own parser (imported only for this command)."""
    from codec.eval.rd import build_parser as rd_parser, run as rd_run

    p = argparse.ArgumentParser(prog="codec eval", description="rate-distortion evaluation over a dataset")
    rd_parser(p)
    return rd_run(p.parse_args(args.rest))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:  # the RD evaluation parses its own options (imported only for this command)
        args = argparse.Namespace(func=_cmd_eval, rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
        sys.stdout.flush()
        return rc
    except CodecError as e:
        print(f"codec: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except MemoryError:
        print("codec: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`codec info f.cdc | head`): stop quietly, as cat does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
