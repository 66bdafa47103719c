"""What ``codec encode`` / ``codec decode`` check before any model or framework is loaded: the arguments, the input
and output paths, the media's size and format, the model name. Everything here needs the standard library,
numpy, Pillow, soundfile and the manifest, never torch, so a mistake is reported within about a second of
start-up. :func:`codec.api.encode_file` and :func:`codec.api.decode_file` run the same checks.

Refused, each with one line (exit code 2 from the CLI) and nothing written:
  - an input that does not exist, is a folder, or is empty; a media suffix the package does not read;
  - an image larger than :data:`MAX_PIXELS`, or that Pillow cannot read (decompression bombs included);
  - audio with more than 64 channels or an unsupported sample rate;
  - an encode output named like a media file (``-o x.png``: encode writes a ``.cdc`` bitstream);
  - a decode output whose suffix cannot hold the modality; an output that exists (without ``--force``), is the
    input, or lies in a folder that does not exist;
  - options that do not apply (``--kbps`` for images, ``--quality`` for a single model, video options for
    audio), a quality the family does not have, a ``--kbps`` outside the model's range, an unknown model;
  - a raw ``.yuv`` whose ``--size`` contradicts the size in its file name or does not divide the file;
  - ``--compare`` with a reference that is missing, unreadable or of another geometry than the decoded file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from codec.errors import CodecError, MediaError

MAX_PIXELS = 1 << 26  # 64 Mpixel: larger images are refused rather than exhausting memory
IMAGE_OUTPUTS = (".png", ".bmp", ".tif", ".tiff", ".ppm")
AUDIO_OUTPUTS = (".wav", ".flac")


@dataclass
class Plan:
    """What the checks found: the modality, the output path, and what they read on the way."""

    modality: str
    output: Path
    info: dict = field(default_factory=dict)


def input_file(path, what: str = "input") -> Path:
    p = Path(path)
    if not p.exists():
        raise CodecError(f"{p}: no such file ({what})")
    if p.is_dir():
        raise CodecError(f"{p} is a folder, not a file ({what})")
    if not p.is_file():
        raise CodecError(f"{p} is not a regular file ({what})")
    if p.stat().st_size == 0:
        raise CodecError(f"{p} is empty (0 bytes)")
    return p


def output_file(dst: Path, src: Path | None, force: bool) -> Path:
    if src is not None and dst.exists() and dst.resolve() == src.resolve():
        raise CodecError("the output would overwrite the input")
    if dst.is_dir():
        raise CodecError(f"{dst} is a folder; name an output file")
    if dst.exists() and not force:
        raise CodecError(f"{dst} exists; pass --force to overwrite it")
    if not dst.parent.exists():
        raise CodecError(f"output folder {dst.parent} does not exist")
    return dst


def default_output(src: Path, suffix: str) -> Path:
    p = src.with_suffix(suffix)
    return p if p != src else src.with_name(src.stem + ".decoded" + suffix)


def is_model_file(model: str) -> bool:
    return model.endswith(".pt") or "/" in model or "\\" in model


def model_entry(model: str | None, quality: int | None, modality: str) -> dict | None:
    """The manifest entry a ``--model`` / ``--quality`` pair names (None for a ``.pt`` file, checked to exist)."""
    from codec.checkpoints import resolve_entry

    if model is not None and is_model_file(model):
        if not Path(model).is_file():
            raise CodecError(f"checkpoint file not found: {model}")
        return None  # a --quality is checked once the model is loaded (variable-rate models take one)
    e = resolve_entry(model, quality, modality)
    if e.get("modality") and e["modality"] != modality:
        raise CodecError(f"model {e['name']!r} codes {e['modality']}, not {modality}")
    return e


# --------------------------------------------------------------------------------------------------------------
# media probes (headers only: nothing is decoded)
# --------------------------------------------------------------------------------------------------------------
def probe_image(p: Path) -> tuple[int, int]:
    """(width, height) from the image header; refuses unreadable files and anything over MAX_PIXELS before
    Pillow decodes a pixel (a 74-byte PNG may claim 100000 x 100000)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from codec.media import IMAGE_EXTENSIONS

    limit = Image.MAX_IMAGE_PIXELS
    try:  # only the header is read here, so Pillow's own bomb check is replaced by the size check below
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                w, h = img.size
    except Image.DecompressionBombError:
        raise MediaError(f"{p}: the image claims more pixels than this package accepts ({MAX_PIXELS >> 20} "
                         "Mpixel at most)") from None
    except UnidentifiedImageError:
        raise MediaError(f"{p}: not an image format this package reads ({', '.join(sorted(IMAGE_EXTENSIONS))})") \
            from None
    except (OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"{p}: cannot read image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if w < 1 or h < 1:
        raise MediaError(f"{p}: empty image ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise MediaError(f"{p}: the image is {w}x{h}, more than the {MAX_PIXELS >> 20} Mpixel this package "
                         "accepts")
    return w, h


def probe_audio(p: Path) -> dict | None:
    """{frames, channels, sample_rate, format} from the header of a file soundfile reads (None otherwise:
    formats read through ffmpeg are checked when decoded)."""
    import soundfile as sf

    from codec.bitstream import MAX_AUDIO_CHANNELS, MAX_SAMPLE_RATE

    try:
        i = sf.info(str(p))
    except (RuntimeError, sf.LibsndfileError):
        return None
    if not 1 <= i.channels <= MAX_AUDIO_CHANNELS:
        raise MediaError(f"{p}: audio with {i.channels} channels is not supported (1 to {MAX_AUDIO_CHANNELS})")
    if not 1 <= i.samplerate <= MAX_SAMPLE_RATE:
        raise MediaError(f"{p}: unsupported sample rate {i.samplerate} Hz (1 to {MAX_SAMPLE_RATE})")
    if i.frames < 1:
        raise MediaError(f"{p}: the audio file holds no samples")
    return {"frames": int(i.frames), "channels": int(i.channels), "sample_rate": int(i.samplerate),
            "format": i.subtype}


_SIZE_IN_NAME = re.compile(r"(?<![0-9])([1-9][0-9]{1,4})x([1-9][0-9]{1,4})(?![0-9])")


def check_yuv_size(p: Path, size: tuple[int, int]) -> None:
    """A raw .yuv carries no size; refuse a ``--size`` that contradicts the one in the file name (``clip_352x288``)
    or does not divide the file into whole frames, and one whose rows do not line up (checked on the first
    frame's luma: with a wrong width, each row is shifted against the next, so vertical differences dwarf
    horizontal ones)."""
    import numpy as np

    w, h = size
    named = _SIZE_IN_NAME.findall(p.stem)
    if named and (w, h) not in {(int(a), int(b)) for a, b in named}:
        a, b = named[-1]
        raise CodecError(f"--size {w}x{h} contradicts the size in the file name {p.name} ({a}x{b})")
    fsize = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    total = p.stat().st_size
    if total % fsize:
        raise CodecError(f"{p}: {total} bytes is not a whole number of {w}x{h} I420 frames ({fsize} bytes each); "
                         "check --size")
    if w >= 16 and h >= 16:
        with open(p, "rb") as f:
            y = np.frombuffer(f.read(w * h), dtype=np.uint8).reshape(h, w).astype(np.int16)
        dv = float(np.abs(np.diff(y, axis=0)).mean())
        dh = float(np.abs(np.diff(y, axis=1)).mean())
        if dv > 3.0 * dh + 4.0:
            raise CodecError(f"{p}: with --size {w}x{h} the rows of the first frame do not line up (mean vertical "
                             f"difference {dv:.1f} against {dh:.1f} horizontally): the size is likely wrong")


# --------------------------------------------------------------------------------------------------------------
# encode / decode plans
# --------------------------------------------------------------------------------------------------------------
def encode_plan(src, dst=None, model=None, *, quality=None, kbps=None, size=None, fps=None, intra_period=None,
                max_frames=None, force: bool = False) -> Plan:
    """Check an encode's arguments and input (see the module notes); returns its :class:`Plan`."""
    from codec.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, modality_of_path

    src = input_file(src)
    dst = Path(dst) if dst else default_output(src, ".cdc")
    suffix = dst.suffix.lower()
    if suffix in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS:
        raise CodecError(f"-o {dst.name}: encode writes a codec bitstream, not a {suffix} file; name the output "
                         ".cdc (decode turns it back into media)")
    output_file(dst, src, force)
    if model is not None and not isinstance(model, str):
        model_modality = getattr(model, "modality", None)
    elif model is not None and src.suffix.lower() not in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS:
        model_modality = None if is_model_file(model) else model_entry(model, None, "image").get("modality")
    else:
        model_modality = None
    modality = modality_of_path(src, model_modality)
    video_opts = [k for k, v in (("size", size), ("fps", fps), ("intra_period", intra_period),
                                 ("max_frames", max_frames)) if v is not None]
    if modality != "video" and video_opts:
        raise CodecError(f"--{video_opts[0].replace('_', '-')} applies to video input")
    if kbps is not None and modality != "audio":
        raise CodecError(f"--kbps applies to audio; {'images' if modality == 'image' else 'video'} take --quality")
    plan = Plan(modality, dst)
    entry = None
    if modality == "image":
        plan.info["width"], plan.info["height"] = probe_image(src)
    elif modality == "audio":
        if quality is not None:
            raise CodecError("--quality applies to image and video model families; audio takes --kbps")
        plan.info["audio"] = probe_audio(src)
    else:
        if src.suffix.lower() == ".yuv":
            if size is None or fps is None:
                raise CodecError(f"{src}: raw .yuv needs --size WIDTHxHEIGHT and --fps")
        if size is not None and src.suffix.lower() == ".yuv":
            check_yuv_size(src, size)
        if fps is not None and not 0 < fps <= 1000:
            raise CodecError(f"--fps must be in (0, 1000], not {fps}")
        if max_frames is not None and max_frames < 1:
            raise CodecError("--max-frames must be positive")
        if intra_period is not None and intra_period < 0:
            raise CodecError("--intra-period must be >= 0 (0 = only the first frame intra)")
    if isinstance(model, str) or model is None:
        if modality == "audio" and model is None:
            channels = (plan.info.get("audio") or {}).get("channels", 1)
            d = _audio_default(channels)
            entry = model_entry(d, None, "audio") if d else None
        else:
            entry = model_entry(model, quality, modality)
    if kbps is not None:
        check_kbps(kbps, entry)
    plan.info["entry"] = entry
    return plan


def _audio_default(channels: int) -> str | None:
    from codec.checkpoints import all_models

    d = all_models().get("defaults", {})
    name = d.get("audio-stereo") if channels >= 2 and d.get("audio-stereo") else d.get("audio")
    return (name["family"] if isinstance(name, dict) else name) if name else None


def check_kbps(kbps: float, entry: dict | None) -> None:
    """``--kbps`` must lie within what the model (an RVQGAN entry's config) codes: one codebook up to all."""
    if not math.isfinite(kbps) or kbps <= 0:
        raise CodecError(f"--kbps must be a positive number, not {kbps}")
    cfg = (entry or {}).get("config") or {}
    if entry is not None and cfg.get("class", entry.get("codec")) not in ("RVQGAN",) and "n_codebooks" not in cfg:
        raise CodecError(f"model {entry['name']!r} has one fixed rate; --kbps applies to RVQGAN models")
    if {"n_codebooks", "codebook_size", "sample_rate", "encoder_rates"} <= set(cfg):
        per = math.log2(cfg["codebook_size"]) * cfg["sample_rate"] / math.prod(cfg["encoder_rates"]) / 1000
        top = per * cfg["n_codebooks"]
        if kbps > top + 1e-9:
            raise CodecError(f"--kbps {kbps:g} is above what {entry['name']} codes: {top:.2f} kbps at most "
                             f"({cfg['n_codebooks']} codebooks of {per:.2f} kbps)")
        if kbps < per - 1e-9:
            raise CodecError(f"--kbps {kbps:g} is below what {entry['name']} codes: one codebook is {per:.2f} kbps")


def decode_plan(src, dst=None, model=None, *, compare=None, force: bool = False, blocks=None) -> Plan:
    """Check a decode's arguments, its bitstream's header and the ``--compare`` reference (see the module notes)
    before any model is loaded; the plan's info holds the parsed ``header`` and ``payload``."""
    from codec.bitstream import read_file
    from codec.media import modality_of_path

    src = input_file(src)
    header, payload = read_file(src)
    modality = header.modality
    if modality not in ("image", "audio", "video"):
        raise CodecError(f"{src} is a {modality} bitstream; decoding {modality} is not available yet")
    if blocks is not None and (modality != "image" or blocks < 0):
        raise CodecError("--blocks takes a number of latent blocks (0 or more) and applies to image files of a "
                         "hierarchical model")
    from codec.media import VIDEO_OUTPUTS

    dst = Path(dst) if dst else default_output(src, {"audio": ".wav", "video": ".y4m"}.get(modality, ".png"))
    allowed = {"image": IMAGE_OUTPUTS, "audio": AUDIO_OUTPUTS, "video": VIDEO_OUTPUTS}[modality]
    if dst.suffix.lower() not in allowed:
        raise CodecError(f"decode writes {modality} as {', '.join(allowed)}, not {dst.suffix or 'no suffix'}")
    output_file(dst, src, force)
    if isinstance(model, str):
        model_entry(model, None, modality)
    elif model is None and not header.model:
        raise CodecError(f"{src} does not name its model; pass --model")
    g = header.geometry
    if compare is not None:
        ref = input_file(compare, "--compare reference")
        kind = modality_of_path(ref)
        if kind != modality:
            raise CodecError(f"--compare {ref.name} is {kind}; the bitstream holds {modality}")
        if modality == "image":
            w, h = probe_image(ref)
            if (w, h) != (g["width"], g["height"]):
                raise CodecError(f"--compare image is {w}x{h}, the decoded one {g['width']}x{g['height']}")
        elif modality == "video":
            from codec.media import open_video

            size = (g["width"], g["height"]) if ref.suffix.lower() == ".yuv" else None
            info, frames = open_video(ref, size=size, fps=g["fps_num"] / g["fps_den"] if size else None)
            frames.close()
            if (info.width, info.height) != (g["width"], g["height"]):
                raise CodecError(f"--compare video is {info.width}x{info.height}, the decoded one "
                                 f"{g['width']}x{g['height']}")
        elif modality == "audio":
            a = probe_audio(ref)
            if a is not None and (a["frames"], a["channels"], a["sample_rate"]) != (
                    g["samples"], g["channels"], g["sample_rate"]):
                raise CodecError(f"--compare audio has {a['frames']} samples x {a['channels']} ch at "
                                 f"{a['sample_rate']} Hz, the decoded one {g['samples']} x {g['channels']} at "
                                 f"{g['sample_rate']} Hz")
    return Plan(modality, dst, {"header": header, "payload": payload})
