"""The ``codec`` command line.

    codec encode IN.png|IN.wav|IN.mp4|IN.y4m|IN.yuv [-o OUT] [--model NAME] [--quality Q] [--device cpu|cuda]
                 [--force]                                      media -> bitstream
    codec decode IN [-o OUT.png|OUT.wav|OUT.y4m|OUT.mp4] [--device cpu|cuda] [--force]
                                                                bitstream -> image, audio or video
    codec info FILE       what a bitstream's header says
    codec models          the checkpoints shipped in checkpoints/manifest.json
    codec export CKPT --name NAME [--family F --quality Q]              training checkpoint -> shipped checkpoint
    codec eval ...        rate-distortion evaluation (codec.eval.rd)

Files decode the same on any machine: see docs/portability.md. No output file is overwritten unless
--force is given.

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


def _has_video_stream(p: Path) -> bool:
    import subprocess

    from codec.media import ffmpeg_exe

    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p)], capture_output=True, text=True)
    return "Video:" in r.stderr


def _input_modality(inp: Path, model_name: str | None) -> str:
    from codec.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    suffix = inp.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS and (suffix not in AUDIO_EXTENSIONS or _has_video_stream(inp)):
        return "video"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if model_name:
        from codec.checkpoints import load_model

        return getattr(load_model(model_name, None, "image"), "modality", "image")
    raise CodecError(f"{inp}: cannot tell the media type from the suffix {suffix or '(none)'}; images: "
                     f"{', '.join(sorted(IMAGE_EXTENSIONS))}; audio: {', '.join(sorted(AUDIO_EXTENSIONS))}; video: "
                     f"{', '.join(sorted(VIDEO_EXTENSIONS))}")


def _cmd_encode(args) -> int:
    import time

    from codec.api import encode_audio, encode_image
    from codec.checkpoints import load_model
    from codec.media import load_audio, load_image

    inp = Path(args.input)
    if not inp.is_file():
        raise CodecError(f"{inp}: no such file")
    out = _out_path(inp, args.output, ".cdc")
    if out.resolve() == inp.resolve():
        raise CodecError("the output would overwrite the input")
    _refuse_existing(out, args.force)
    modality = _input_modality(inp, args.model)
    video_opts = [o for o in ("size", "fps", "intra_period", "max_frames") if getattr(args, o) is not None]
    if modality != "video" and video_opts:
        raise CodecError(f"--{video_opts[0].replace('_', '-')} applies to video input")
    if modality == "video":
        return _encode_video(args, inp, out)
    if modality == "image" and args.kbps is not None:
        raise CodecError("--kbps applies to audio; images take --quality")
    samples = sr = None
    if modality == "audio" and args.model is None:  # the default audio model for this channel count
        from codec.api import default_audio_model

        samples, sr = load_audio(inp)
        model = load_model(default_audio_model(samples.shape[1]), None, "audio")
    else:
        model = load_model(args.model, args.quality, modality)
    if getattr(model, "modality", "image") != modality:
        raise CodecError(f"model {model.model_name!r} codes {model.modality}; {inp} is {modality}")
    model = _place(model, args)
    if modality == "image":
        rgb = load_image(inp)
        t0 = time.perf_counter()
        data = encode_image(rgb, model)
        dt = time.perf_counter() - t0
        _write_bytes(out, data, args.force)
        h, w = rgb.shape[:2]
        print(f"{inp} -> {out}: {len(data)} bytes, {len(data) * 8 / (h * w):.4f} bpp, {w}x{h}, model "
              f"{model.model_name}, encode {dt:.2f} s")
        return 0
    if args.quality is not None:
        raise CodecError("--quality applies to image model families; name an audio model with --model")
    if samples is None:
        samples, sr = load_audio(inp)
    t0 = time.perf_counter()
    data = encode_audio(samples, sr, model, kbps=args.kbps)
    dt = time.perf_counter() - t0
    _write_bytes(out, data, args.force)
    secs = samples.shape[0] / sr
    nominal = ""
    if hasattr(model, "codebooks_for_kbps"):
        nq = model.codebooks_for_kbps(args.kbps) if args.kbps is not None else model.n_codebooks
        nominal = f" ({nq} codebooks, {model.kbps(nq):.2f} kbps nominal)"
    print(f"{inp} -> {out}: {len(data)} bytes, {len(data) * 8 / secs / 1000:.2f} kbps{nominal}, {secs:.2f} s, "
          f"{samples.shape[1]} ch, {sr} Hz, model {model.model_name}, encode {dt:.2f} s")
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


def _encode_video(args, inp: Path, out: Path) -> int:
    import time

    from codec.api import encode_video_frames
    from codec.checkpoints import load_model
    from codec.media import open_video

    if args.kbps is not None:
        raise CodecError("--kbps applies to audio; video takes --quality")
    if inp.suffix.lower() == ".yuv" and (args.size is None or args.fps is None):
        raise CodecError(f"{inp}: raw .yuv needs --size WIDTHxHEIGHT and --fps")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise CodecError(f"--fps must be in (0, 1000], not {args.fps}")
    if args.max_frames is not None and args.max_frames < 1:
        raise CodecError("--max-frames must be positive")
    info, frames = open_video(inp, size=_parse_size(args.size), fps=args.fps, max_frames=args.max_frames)
    model = load_model(args.model, args.quality, "video")
    if getattr(model, "modality", "image") != "video":
        raise CodecError(f"model {model.model_name!r} codes {model.modality}; {inp} is video")
    model = _place(model, args)
    t0 = time.perf_counter()
    with _progress(info.frames, "encode") as bar:
        data = encode_video_frames(frames, info.width, info.height, info.fps_num, info.fps_den, model,
                                   intra_period=args.intra_period, progress=bar)
    dt = time.perf_counter() - t0
    from codec.bitstream import unpack

    n = unpack(data)[0].geometry["frames"]
    _write_bytes(out, data, args.force)
    secs = n * info.fps_den / info.fps_num
    print(f"{inp} -> {out}: {len(data)} bytes, {len(data) * 8 / secs / 1000:.1f} kbps, "
          f"{len(data) * 8 / (n * info.width * info.height):.4f} bpp, {n} frames {info.width}x{info.height} at "
          f"{info.fps:.3g} fps, model {model.model_name}, encode {dt:.2f} s ({n / dt:.2f} frames/s)")
    return 0


def _decode_video(args, inp: Path, out: Path, header, payload) -> int:
    import time

    import numpy as np

    from codec.api import decode_video_frames
    from codec.media import VIDEO_OUTPUTS, VideoWriter, open_video

    if out.suffix.lower() not in VIDEO_OUTPUTS:
        raise CodecError(f"decode writes video as {', '.join(VIDEO_OUTPUTS)}, not {out.suffix or 'no suffix'}")
    model = _decode_model(args, inp, header, "video")
    g = header.geometry
    ref = None
    if args.compare:
        rinfo, ref = open_video(args.compare, size=(g["width"], g["height"]), fps=g["fps_num"] / g["fps_den"])
        if (rinfo.width, rinfo.height) != (g["width"], g["height"]):
            raise CodecError(f"--compare video is {rinfo.width}x{rinfo.height}, the decoded one "
                             f"{g['width']}x{g['height']}")
    from codec.eval.metrics import psnr

    scores = []
    t0 = time.perf_counter()
    with VideoWriter(out, g["width"], g["height"], g["fps_num"], g["fps_den"]) as w, \
            _progress(g["frames"], "decode") as bar:
        for y, u, v in decode_video_frames(header, payload, model):
            w.write(y, u, v)
            bar.update(1)
            if ref is not None:
                r = next(ref, None)
                if r is None:
                    raise CodecError(f"--compare video has fewer frames than the {g['frames']} decoded")
                scores.append((6 * psnr(r[0], y) + psnr(r[1], u) + psnr(r[2], v)) / 8)
    dt = time.perf_counter() - t0
    n = g["frames"]
    msg = (f"{inp} -> {out}: {n} frames {g['width']}x{g['height']}, model {header.model}, decode {dt:.2f} s "
           f"({n / dt:.2f} frames/s)")
    if scores:
        kbps = inp.stat().st_size * 8 * g["fps_num"] / g["fps_den"] / n / 1000
        msg += f"; vs {args.compare}: {kbps:.1f} kbps, PSNR-YUV {float(np.mean(scores)):.2f} dB"
    print(msg)
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


def _place(model, args):
    from codec.api import place

    return place(model, getattr(args, "device", None))


def _decode_model(args, inp: Path, header, modality: str):
    from codec.checkpoints import load_model

    if args.model:
        return _place(load_model(args.model, None, modality), args)
    if header.model:
        try:
            model = load_model(header.model, None, modality)
        except CodecError as e:
            raise CodecError(f"{inp} needs model {header.model!r}, which cannot be loaded: {e}") from None
        return _place(model, args)
    raise CodecError(f"{inp} does not name its model; pass --model")


def _cmd_decode(args) -> int:
    import tempfile
    import time

    from codec.bitstream import read_file

    inp = Path(args.input)
    header, payload = read_file(inp)
    if header.modality not in ("image", "audio", "video"):
        raise CodecError(f"{inp} is a {header.modality} bitstream; decoding {header.modality} is not available yet")
    audio = header.modality == "audio"
    out = _out_path(inp, args.output, {"audio": ".wav", "video": ".y4m"}.get(header.modality, ".png"))
    if out.exists() and out.resolve() == inp.resolve():
        raise CodecError("the output would overwrite the input")
    _refuse_existing(out, args.force)
    if header.modality == "video":
        return _decode_video(args, inp, out, header, payload)
    allowed = (".wav", ".flac") if audio else (".png", ".bmp", ".tif", ".tiff", ".ppm")
    if out.suffix.lower() not in allowed:
        raise CodecError(f"decode writes {'audio' if audio else 'a lossless image'} ({', '.join(allowed)}), not "
                         f"{out.suffix or 'no suffix'}")
    model = _decode_model(args, inp, header, header.modality)
    t0 = time.perf_counter()
    if audio:
        from codec.api import decode_audio_payload
        from codec.media import save_audio

        samples, sr = decode_audio_payload(header, payload, model)
        dt = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(dir=out.parent) as td:
            tmp = Path(td) / ("x" + out.suffix)
            save_audio(tmp, samples, sr)
            _write_bytes(out, tmp.read_bytes(), args.force)
        secs = samples.shape[0] / sr
        msg = (f"{inp} -> {out}: {secs:.2f} s, {samples.shape[1]} ch, {sr} Hz, model {header.model}, "
               f"decode {dt:.2f} s")
        if args.compare:
            from codec.eval.metrics import mel_distance, si_sdr
            from codec.media import load_audio

            ref, rsr = load_audio(args.compare)
            if ref.shape != samples.shape or rsr != sr:
                raise CodecError(f"--compare audio is {ref.shape} at {rsr} Hz, the decoded one {samples.shape} at "
                                 f"{sr} Hz")
            kbps = inp.stat().st_size * 8 / secs / 1000
            msg += (f"; vs {args.compare}: {kbps:.2f} kbps, SI-SDR {si_sdr(ref, samples):.2f} dB, mel distance "
                    f"{mel_distance(ref, samples, sr):.3f}")
        print(msg)
        return 0
    from codec.api import decode_image_payload
    from codec.media import save_image

    rgb = decode_image_payload(header, payload, model)
    dt = time.perf_counter() - t0
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

    prior = None
    if args.prior:
        try:
            prior = json.loads(args.prior)
        except ValueError as e:
            raise CodecError(f"--prior must be a JSON object of prior settings: {e}") from None
    e = export(args.checkpoint, args.name, out_dir=args.out_dir, family=args.family, quality=args.quality,
               force=args.force, update_manifest=not args.no_manifest, prior=prior)
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
        rd = m.get("rd", {})
        kodak = rd.get("kodak", {})
        audio = rd.get("speech-heldout") or rd.get("music-heldout") or {}
        audio = audio if isinstance(audio, list) else [audio] if audio else []  # RVQGAN: one point per bitrate
        video = rd.get("video-h264") or rd.get("video") or {}
        if kodak:
            res = f"kodak {kodak['bpp']:.3f} bpp {kodak['psnr-rgb']:.2f} dB"
        elif m.get("modality") == "video":
            res = f"on {m.get('config', {}).get('image_model')}" + (
                f"; {video['kbps']:.0f} kbps {video['psnr-yuv']:.2f} dB PSNR-YUV" if video else "")
        elif audio:
            res = "held-out " + ", ".join(f"{p['kbps']:.1f} kbps mel {p['mel-distance']:.2f}" for p in audio)
        else:
            res = ""
        what = f"lambda={t.get('lambda')}" if t.get("lambda") is not None else m.get("modality", "")
        print(f"{m['name']:16s} {m.get('codec', ''):20s} q={m.get('quality')!s:4s} {what:15s} "
              f"{m.get('file', ''):18s} {res}")
    for modality, d in manifest.get("defaults", {}).items():
        print(f"default {modality} model: {d}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codec", description="Learned codecs on one shared rANS entropy layer.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("encode", help="compress an image, audio or video file into a bitstream (prints the rate "
                       "and time)")
    s.add_argument("input")
    s.add_argument("-o", "--output", help="output file (default: IN with suffix .cdc)")
    s.add_argument("--model", help="shipped model name or family (see `codec models`) or a .pt checkpoint")
    s.add_argument("--quality", type=int, help="quality level within the model family (1 = lowest rate)")
    s.add_argument("--kbps", type=float, help="audio (RVQGAN): target nominal bitrate; picks the number of codebooks "
                   "(the most whose fixed-length rate fits; entropy coding then lowers the real rate)")
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
    s.add_argument("--device", help="where the model runs: cpu (default) or cuda; files from either decode here")
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
    s.add_argument("--prior", help="new prior settings as JSON, refitted on the model's recorded training data (also "
                   "from a shipped checkpoint). RVQGAN: token prior, e.g. '{\"prior_contexts\": 64, "
                   "\"prior_uniform\": 0.1}'; WaLLoC image model: context model, e.g. '{\"context_cross\": 3}'")
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
