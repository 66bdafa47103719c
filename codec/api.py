"""The public coding API: the one data path every user (CLI, RD evaluation, MPQ tests) goes through.

    import codec
    data = codec.encode("photo.png")               # a path, an array or a tensor; the modality from the input
    x = codec.decode(data)                         # or codec.decode("photo.cdc")
    model = codec.load_model("msh-q5")             # a shipped name / family, or a .pt file

    from codec.api import encode_image, decode     # the per-modality functions underneath
    data = encode_image(rgb_uint8)                 # default image model, middle quality -> container bytes
    data = encode_image(rgb_uint8, model="msh", quality=5)
    rgb = decode(data)                             # loads the model the header names, checks its fingerprint
    data = encode_audio(samples, 44100)            # default audio model; decode(data) -> (samples, rate)
    data = encode_video(video)                     # codec.media.Video (4:2:0); decode(data) -> Video

encode: media -> tensor -> ``model.compress`` (the codec contract, :class:`codec.codecs.base.CodecModule`: bytes
from codec.entropy and the symbols checksum) -> codec.bitstream container (one header builder: geometry, model
name, checkpoint and table fingerprints, symbols checksum).
decode: container -> the model the header names (its fingerprint must match) -> ``model.decompress`` (which
verifies the symbols checksum) -> media.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import torch

from codec.bitstream import (
    DIVERGED, MAX_AUDIO_CHANNELS, MAX_SAMPLE_RATE, Header, Payload, check_checkpoint, pack, unpack,
)
from codec.errors import BitstreamError, CodecError, DivergenceError, MediaError

from codec.preflight import MAX_PIXELS, default_output  # noqa: E402,F401  (one limit for files and arrays)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise MediaError(f"expected an RGB uint8 array (H, W, 3), got {a.dtype} {a.shape} "
                         "(codec.media.load_image converts files under the documented rules)")
    h, w = a.shape[:2]
    if h < 1 or w < 1:
        raise MediaError(f"empty image ({h}x{w})")
    if h * w > MAX_PIXELS:
        raise MediaError(f"image {w}x{h} is larger than the {MAX_PIXELS >> 20} Mpixel this codec accepts")
    return torch.from_numpy(np.array(a, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


def _to_rgb8(x: torch.Tensor) -> np.ndarray:
    return (x[0].cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _pack(model, geometry: dict, payload: Payload) -> bytes:
    """The container for a payload: the one place a header is built."""
    if payload.checksum is None:
        raise CodecError(f"{type(model).__name__}.compress returned a payload without the symbols checksum")
    header = Header(codec=model.codec_name, modality=model.modality, geometry=geometry,
                    model=getattr(model, "model_name", ""), checkpoint_fingerprint=model.fingerprint(),
                    table_fingerprint=model.table_fingerprint(), symbols_checksum=payload.checksum)
    return pack(header, payload)


def place(model, device=None):
    """Move a loaded codec to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device) and return it;
    ``None`` leaves it where it is. Files are bit-exact across devices: what the entropy decoder depends on is
    computed in exact integer arithmetic (:mod:`codec.entropy.intnet`)."""
    if device is None:
        return model
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise CodecError(f"unknown device {device!r} (use cpu or cuda)") from None
    if dev.type not in ("cpu", "cuda"):
        raise CodecError(f"unsupported device {device!r} (use cpu or cuda)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CodecError(f"device {device!r} was asked for, but torch sees no CUDA GPU on this machine")
    return model.to(dev)


def _device_of(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _model_for(model, quality: int | None, modality: str, device=None):
    """A placed model that codes ``modality``: a loaded codec as given, else a shipped name / family (+ ``quality``)
    or a ``.pt`` path, None meaning the modality's default."""
    from codec.checkpoints import load_model

    if model is None or isinstance(model, str):
        model = load_model(model, quality, modality)
    _check_modality(model, modality)
    return place(model, device)


def encode_image(rgb, model=None, quality: int | None = None, device=None) -> bytes:
    """Container bytes for an RGB uint8 image (or an image file path). ``model``: a loaded codec, a shipped name/family, a .pt path, or
    None for the default image model (at its default quality unless ``quality`` is given). ``device``: where the
    model runs (see :func:`place`)."""
    if isinstance(rgb, (str, Path)):
        from codec.media import load_image
        from codec.preflight import input_file, probe_image

        probe_image(input_file(rgb))
        rgb = load_image(rgb)
    named = isinstance(model, str) or model is None
    model = _model_for(model, quality, "image", device)
    x = _to_tensor(rgb).to(_device_of(model))
    options = {}
    if getattr(model, "n_qualities", None):  # one variable-rate model: --quality picks its lambda
        options["quality"] = quality
    elif quality is not None and not named:
        raise CodecError(f"model {getattr(model, 'model_name', '') or type(model).__name__!r} has one rate; "
                         "--quality picks a member of a shipped family or a variable-rate model's lambda")
    with torch.inference_mode():
        payload = model.compress(x, **options)
    return _pack(model, {"height": x.shape[2], "width": x.shape[3], "channels": 3}, payload)


@contextlib.contextmanager
def _diverged():
    """Entropy-level inconsistencies in a file whose CRCs check are a divergence, reported as one (never as a
    wrong output, nor as corruption)."""
    try:
        yield
    except DivergenceError as e:
        if str(e).startswith("the decoder diverged"):
            raise
        raise DivergenceError(DIVERGED.format(detail=str(e))) from None


def _check_modality(model, modality: str) -> None:
    have = getattr(model, "modality", "image")
    if have != modality:
        raise CodecError(f"model {getattr(model, 'model_name', type(model).__name__)!r} codes {have}, not {modality}")


def decode(data, model=None, device=None, blocks: int | None = None):
    """Decode container bytes (or a ``.cdc`` file path): an RGB uint8 array for an image, ``(samples (T, C)
    float32, sample_rate)`` for audio, a :class:`codec.media.Video` for video. ``model``: a loaded codec, or None to
    load the one the header names. ``device``: where the model runs (see :func:`place`); a file decodes the same
    on any device."""
    if isinstance(data, (str, Path)):
        from codec.bitstream import read_file

        header, payload = read_file(data)
    else:
        header, payload = unpack(data)
    if blocks is not None and header.modality != "image":
        raise CodecError("blocks= (progressive decoding) applies to image files")
    if header.modality == "image":
        return decode_image_payload(header, payload, model, device, blocks)
    if header.modality == "audio":
        return decode_audio_payload(header, payload, model, device)
    if header.modality == "video":
        return decode_video(header, payload, model, device)
    raise BitstreamError(f"this is a {header.modality} bitstream; decoding {header.modality} is not available yet")


def _header_model(header: Header, model, modality: str, device=None, near=None):
    """The model a file needs (the one its header names unless given), placed, its fingerprint checked. A name
    that is not a shipped or ``CODEC_CHECKPOINTS`` model, or a shipped one whose weights are not the file's, is looked
    for as ``NAME.pt`` beside the file (``near``) and in the current folder, and used when its fingerprint is the
    file's."""
    from codec.checkpoints import load_model, retired_hint

    if model is None:
        if not header.model:
            raise BitstreamError("the bitstream does not name its model; pass --model")
        try:
            model = load_model(header.model, None, modality)
        except CodecError as e:
            model = _model_file_for(header, modality, near)
            if model is None:
                hint = retired_hint(header.checkpoint_fingerprint)
                raise BitstreamError(
                    f"this file was made with model {header.model!r}, which is not a shipped model"
                    + (hint or f" ({e}); decode it with --model {header.model}.pt (the checkpoint it was encoded "
                               "with), or put that file in a folder named by CODEC_CHECKPOINTS")) from None
        else:
            if header.codec == model.codec_name and model.fingerprint() != header.checkpoint_fingerprint:
                # a file of other weights under a shipped name (the model has been retrained since): its own
                # checkpoint, as NAME.pt beside the file or in the current folder
                model = _model_file_for(header, modality, near) or model
                if model.fingerprint() != header.checkpoint_fingerprint:
                    hint = retired_hint(header.checkpoint_fingerprint)
                    raise BitstreamError(
                        f"this file was made with other weights of {header.model!r} than the ones installed "
                        f"(checkpoint fingerprint {header.checkpoint_fingerprint.hex()}, installed "
                        f"{model.fingerprint().hex()})" + (hint or f"; put the checkpoint it was made with beside the "
                        f"file or in the current folder as {header.model}.pt, or pass --model FILE.pt (NEWS.md names "
                        "the commit that holds each replaced checkpoint)"))
    model = _model_for(model, None, modality, device)
    check_checkpoint(header, model.codec_name, model.fingerprint(), getattr(model, "model_name", ""))
    return model


def _model_file_for(header: Header, modality: str, near=None):
    """A ``<model name>.pt`` beside the file or in the current folder whose fingerprint is the file's, else None."""
    from codec.checkpoints import load_model

    name = header.model
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    folders = [Path(near).resolve().parent] if near is not None else []
    folders.append(Path.cwd())
    for d in dict.fromkeys(folders):
        f = d / f"{name}.pt"
        if f.is_file():
            try:
                m = load_model(str(f), None, modality)
            except CodecError:
                continue
            if m.codec_name == header.codec and m.fingerprint() == header.checkpoint_fingerprint:
                return m
    return None


def decode_image_payload(header: Header, payload, model=None, device=None, blocks: int | None = None) -> np.ndarray:
    """An image file's pixels; ``blocks=k``: a progressive decode of a hierarchical model's first k latent blocks."""
    model = _header_model(header, model, "image", device)
    h, w = header.geometry["height"], header.geometry["width"]
    if tuple(payload.ints.get("size", ())) != (h, w):
        raise BitstreamError(f"payload size {payload.ints.get('size')} disagrees with the header ({h}x{w})")
    if h * w > MAX_PIXELS:
        raise BitstreamError(f"header says {w}x{h}, larger than the {MAX_PIXELS >> 20} Mpixel limit")
    if blocks is not None and not hasattr(model, "num_latent_blocks"):
        raise CodecError(f"--blocks decodes a hierarchical model progressively; {header.codec} files have no "
                         "latent blocks")
    with torch.inference_mode(), _diverged():
        x_hat = model.decompress(payload) if blocks is None else model.decompress(payload, blocks=blocks)
    return _to_rgb8(x_hat)


# --------------------------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------------------------
MAX_AUDIO_SAMPLES = 1 << 34


#: the largest numerator or denominator of a sample-rate ratio (in lowest terms) the resampler accepts: its
#: kernel grows with them (44100 -> 48000 is 147/160; a coprime 44101 -> 48000 would need gigabytes)
MAX_RATE_TERMS = 1024


def check_rate_ratio(sr_from: int, sr_to: int, error=MediaError) -> None:
    import math

    g = math.gcd(int(sr_from), int(sr_to))
    if max(int(sr_from) // g, int(sr_to) // g) > MAX_RATE_TERMS:
        raise error(f"sample rate {sr_from} Hz cannot be resampled to the model's {sr_to} Hz within bounded memory "
                    f"(the ratio {int(sr_from) // g}/{int(sr_to) // g} does not reduce below {MAX_RATE_TERMS}); "
                    "resample the input to a standard rate (e.g. 44100 or 48000 Hz) first")


def _resample(x: torch.Tensor, sr_from: int, sr_to: int) -> torch.Tensor:
    if sr_from == sr_to:
        return x
    import torchaudio.functional as AF

    check_rate_ratio(sr_from, sr_to)
    return AF.resample(x, int(sr_from), int(sr_to))


def default_audio_model(channels: int) -> str:
    """The manifest's default audio model for ``channels``: ``defaults["audio-stereo"]`` for two or more channels
    when the manifest has one, else ``defaults["audio"]``."""
    from codec.checkpoints import all_models
    from codec.errors import CheckpointError

    d = all_models().get("defaults", {})
    name = d.get("audio-stereo") if channels >= 2 and d.get("audio-stereo") else d.get("audio")
    if not name:
        raise CheckpointError("no default audio model is shipped (checkpoints/manifest.json); name one with --model")
    return name["family"] if isinstance(name, dict) else name


def resampled_length(t: int, sr_from: int, sr_to: int) -> int:
    """The length of ``t`` samples resampled from ``sr_from`` to ``sr_to`` (torchaudio's resample)."""
    import math

    g = math.gcd(int(sr_from), int(sr_to))
    return -(-(int(sr_to) // g) * int(t) // (int(sr_from) // g))


def encode_audio(samples, sample_rate: int | None = None, model=None, kbps: float | None = None, device=None,
                 sample_format: str | None = None) -> bytes:
    """Container bytes for audio ``samples`` (T, C) float in [-1, 1] at ``sample_rate`` (or an audio file path, its
    rate and sample format read from the file). The signal is resampled to the model's rate; any channel count is
    coded (mono into a stereo model is duplicated; other counts go through the model in groups of its channel
    count, see :meth:`codec.codecs.base.CodecModule.channel_groups`); decoding restores the original rate, channel
    count and length. ``kbps``: for models with a variable rate (RVQGAN), the nominal bitrate, which picks the
    number of codebooks (default: all of them). ``model=None`` picks the default audio model for the channel count
    (:func:`default_audio_model`). ``sample_format``: the source's sample format (a soundfile subtype such as
    ``PCM_24`` or ``FLOAT``), recorded so that decoding writes the same one."""
    from codec.media import SAMPLE_FORMATS

    if isinstance(samples, (str, Path)):
        from codec.media import audio_sample_format, load_audio

        if sample_rate is not None:
            raise MediaError("encode_audio(path) reads the sample rate from the file; pass sample_rate only with "
                             "an array")
        path = samples
        samples, sample_rate = load_audio(path)
        sample_format = sample_format or audio_sample_format(path)
    if sample_rate is None:
        raise MediaError("encode_audio needs the sample rate of the samples (sample_rate=)")
    try:
        a = np.asarray(samples, dtype=np.float32)
    except (TypeError, ValueError):
        raise MediaError(f"expected audio samples (T, C) as numbers, got {type(samples).__name__}") from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise MediaError(f"expected audio samples (T, C), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MediaError("audio contains NaN or infinite samples")
    t, c = a.shape
    if c > MAX_AUDIO_CHANNELS:
        raise MediaError(f"audio with {c} channels is not supported (at most {MAX_AUDIO_CHANNELS})")
    if not 1 <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise MediaError(f"unsupported sample rate {sample_rate} (1 to {MAX_SAMPLE_RATE} Hz)")
    if sample_format is not None and sample_format not in SAMPLE_FORMATS:
        raise MediaError(f"unknown sample format {sample_format!r} (one of {', '.join(SAMPLE_FORMATS)})")
    if model is None:
        model = default_audio_model(c)
    model = _model_for(model, None, "audio", device)
    x = torch.from_numpy(np.ascontiguousarray(a.T))
    mc = model.channels
    if c == 1 and mc > 1:
        x = x.repeat(mc, 1)
    x = _resample(x, sample_rate, model.sample_rate)[None].clamp(-1, 1).to(_device_of(model))
    if kbps is not None and not hasattr(model, "codebooks_for_kbps"):
        raise CodecError(f"model {getattr(model, 'model_name', type(model).__name__)!r} has one fixed rate; "
                         "--kbps applies to RVQGAN models")
    with torch.inference_mode():
        payload = model.compress(x) if kbps is None else model.compress(x, kbps=kbps)
    geometry = {"samples": t, "channels": c, "sample_rate": int(sample_rate)}
    if sample_format is not None:
        geometry["sample_format"] = SAMPLE_FORMATS.index(sample_format)
    return _pack(model, geometry, payload)


def audio_geometry(header: Header, payload, model) -> tuple[int, int, int]:
    """(samples, channels, sample rate) of an audio file's header, checked against what the payload and the
    model produce (before anything is decoded): the length must be what the coded length resamples to, the
    channel count one the model codes in the payload's channel groups."""
    g = header.geometry
    t, c, sr = (int(g[k]) for k in ("samples", "channels", "sample_rate"))
    if not (0 < t <= MAX_AUDIO_SAMPLES and 0 < c <= MAX_AUDIO_CHANNELS and 0 < sr <= MAX_SAMPLE_RATE):
        raise BitstreamError(f"audio geometry out of range: {t} samples, {c} channels, {sr} Hz")
    if "sample_format" in g and not 0 <= g["sample_format"] < len(_sample_formats()):
        raise BitstreamError(f"audio sample format {g['sample_format']} is unknown (corrupt file)")
    check_rate_ratio(sr, model.sample_rate, BitstreamError)
    size = payload.ints.get("size")
    if size is not None and len(size) == 1:
        want = resampled_length(t, sr, model.sample_rate)
        if int(size[0]) != want:
            raise BitstreamError(f"the header says {t} samples at {sr} Hz, which code as {want} samples at the "
                                 f"model's {model.sample_rate} Hz; the payload holds {int(size[0])} (corrupt or "
                                 "forged file)")
    return t, c, sr


def _sample_formats():
    from codec.media import SAMPLE_FORMATS

    return SAMPLE_FORMATS


def decode_audio_payload(header: Header, payload, model=None, device=None) -> tuple[np.ndarray, int]:
    """(samples (T, C) float32, sample rate) of an audio file; the sample format it was read from, if recorded,
    is ``audio_sample_format_of(header)``."""
    model = _header_model(header, model, "audio", device)
    t, c, sr = audio_geometry(header, payload, model)
    if header.version < 3:  # codec 0.1: mono models coded the mean of several channels, no channel groups
        payload = dataclasses.replace(payload, meta={k: v for k, v in payload.meta.items() if k != "channels"})
    with torch.inference_mode(), _diverged():
        x_hat = model.decompress(payload)
    y = _resample(x_hat[0].cpu(), model.sample_rate, sr)
    if y.shape[1] < t:
        y = torch.nn.functional.pad(y, (0, t - y.shape[1]))
    y = y[:, :t]
    mc = y.shape[0]
    if c != mc:  # format 2: a mono model coded the mean of several channels, a stereo one a duplicated mono input
        if c != 1 and mc != 1:
            raise BitstreamError(f"the header says {c} channels; this file's model decodes {mc} (corrupt file)")
        y = y.mean(0, keepdim=True) if c == 1 else y.repeat(c, 1)
    return y.clamp(-1, 1).T.contiguous().numpy(), sr


def audio_sample_format_of(header: Header) -> str | None:
    """The sample format (soundfile subtype) the audio was read from, when the file records it."""
    v = header.geometry.get("sample_format")
    return None if v is None else _sample_formats()[int(v)]


# --------------------------------------------------------------------------------------------------------------
# video
# --------------------------------------------------------------------------------------------------------------
MAX_VIDEO_PIXELS = 1 << 24  # per frame (16 Mpixel)


def encode_video_frames(frames, width: int, height: int, fps_num: int, fps_den: int, model=None,
                        quality: int | None = None, intra_period: int | None = None, progress=None,
                        device=None) -> bytes:
    """Container bytes for an iterable of 4:2:0 frames ``(Y, U, V)`` uint8, coded one at a time (memory bounded by
    one frame and one segment). ``model``: a loaded video codec, a shipped name / family (+ ``quality``), or None
    for the default video model. ``intra_period``: one intra frame per N (default: the model's, 32; 1 = every
    frame intra, 0 = only the first). ``progress``: an object with ``update(n)`` (e.g. tqdm)."""
    model = _model_for(model, quality, "video", device)
    if not (0 < width and 0 < height and width * height <= MAX_VIDEO_PIXELS):
        raise MediaError(f"unsupported frame size {width}x{height}")
    if not (0 < fps_num < 1 << 31 and 0 < fps_den < 1 << 31):
        raise MediaError(f"bad frame rate {fps_num}/{fps_den}")
    with torch.inference_mode():
        payload = model.compress(frames, height, width, intra_period, progress)
    return _pack(model, {"frames": payload.meta["frames"], "height": height, "width": width, "channels": 3,
                         "fps_num": int(fps_num), "fps_den": int(fps_den)}, payload)


def encode_video(video, model=None, quality: int | None = None, intra_period: int | None = None,
                 device=None) -> bytes:
    """Container bytes for a :class:`codec.media.Video` (all frames in memory; files stream through
    :func:`encode_video_frames`)."""
    frames = ((video.y[t], video.u[t], video.v[t]) for t in range(video.frames))
    return encode_video_frames(frames, video.width, video.height, video.fps_num, video.fps_den, model, quality,
                               intra_period, device=device)


def decode_video_frames(header: Header, payload, model=None, device=None):
    """Generator of decoded 4:2:0 frames ``(Y, U, V)``, one at a time. After the last frame the decoded symbols are
    checked against the encoder's checksum: a diverged or corrupt decode raises BitstreamError (writers should
    discard what they wrote, as :class:`codec.media.VideoWriter` does)."""
    model = _header_model(header, model, "video", device)
    g = header.geometry
    n, h, w = int(g["frames"]), int(g["height"]), int(g["width"])
    if h * w > MAX_VIDEO_PIXELS or n < 1:
        raise BitstreamError(f"video geometry out of range: {n} frames of {w}x{h}")
    if tuple(payload.ints.get("size", ())) != (h, w):
        raise BitstreamError(f"payload size {payload.ints.get('size')} disagrees with the header ({h}x{w})")
    payload = dataclasses.replace(payload, meta={**payload.meta, "frames": n},
                                  checksum=payload.checksum or header.symbols_checksum,
                                  bound=payload.bound if payload.checksum else header.bound)
    with torch.inference_mode(), _diverged():
        yield from model.decompress(payload)


def decode_video(header: Header, payload, model=None, device=None):
    """A whole decoded clip as a :class:`codec.media.Video`."""
    from codec.media import Video

    ys, us, vs = [], [], []
    for y, u, v in decode_video_frames(header, payload, model, device):
        ys.append(y)
        us.append(u)
        vs.append(v)
    g = header.geometry
    return Video(np.stack(ys), np.stack(us), np.stack(vs), int(g["fps_num"]), int(g["fps_den"]))


# --------------------------------------------------------------------------------------------------------------
# one entry point for every modality (exposed as codec.encode / codec.decode / codec.load_model)
# --------------------------------------------------------------------------------------------------------------
def load_model(model: str | None = None, quality: int | None = None, modality: str = "image", device=None):
    """A ready-to-code model: a shipped name (``msh-q5``), a family (``msh``, with ``quality``), a ``.pt`` file
    (an exported checkpoint, e.g. a custom codec's), or None for the default ``modality`` model."""
    from codec.checkpoints import load_model as _load

    return place(_load(model, quality, modality), device)


def encode(x, model=None, *, quality: int | None = None, sample_rate: int | None = None,
           kbps: float | None = None, intra_period: int | None = None, device=None) -> bytes:
    """Container bytes for any input; the modality comes from the input (or from ``model`` when the input is
    ambiguous):

    - a path: an image, audio or video file (by suffix, as ``codec encode`` reads it);
    - a :class:`codec.media.Video` (4:2:0 frames);
    - an RGB uint8 array (H, W, 3), or an image tensor (3, H, W) / (1, 3, H, W) float in [0, 1];
    - audio: a float array (T, C) or (T,) in [-1, 1], or a tensor (C, T), with ``sample_rate``.

    ``model``: a loaded codec, a shipped name / family, a ``.pt`` path, or None for the modality's default."""
    from codec.media import Video, load_audio, load_image, modality_of_path, open_video

    if isinstance(x, (str, Path)):
        p = Path(x)
        if not p.is_file():
            raise MediaError(f"{p}: no such file")
        modality = modality_of_path(p, None if isinstance(model, str) else getattr(model, "modality", None))
        if modality == "image":
            return encode_image(load_image(p), model, quality, device)
        if modality == "audio":
            samples, sr = load_audio(p)
            return encode_audio(samples, sr, model, kbps, device)
        info, frames = open_video(p)
        return encode_video_frames(frames, info.width, info.height, info.fps_num, info.fps_den, model, quality,
                                   intra_period, device=device)
    if isinstance(x, Video):
        return encode_video(x, model, quality, intra_period, device)
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.dim() in (3, 4) and t.shape[-3] == 3 and t.is_floating_point() and sample_rate is None:
            t = t[0] if t.dim() == 4 else t
            if t.dim() != 3:
                raise MediaError(f"an image tensor is (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
            rgb = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            return encode_image(rgb, model, quality, device)
        if t.dim() == 2 and sample_rate is not None:
            return encode_audio(t.float().T.numpy(), sample_rate, model, kbps, device)
        raise MediaError(f"cannot tell what a tensor of shape {tuple(x.shape)} holds: images are (3, H, W) float in "
                         "[0, 1]; audio is (C, T) with sample_rate=")
    a = np.asarray(x)
    if a.dtype == np.uint8 and a.ndim == 3 and sample_rate is None:
        return encode_image(a, model, quality, device)
    if sample_rate is not None and a.ndim in (1, 2) and a.dtype.kind == "f":
        return encode_audio(a, sample_rate, model, kbps, device)
    raise MediaError(f"cannot tell what an array of {a.dtype} {a.shape} holds: images are RGB uint8 (H, W, 3); "
                     "audio is float (T, C) with sample_rate=")


# --------------------------------------------------------------------------------------------------------------
# file to file (what `codec encode` / `codec decode` run; the CLI only parses arguments and prints the report)
# --------------------------------------------------------------------------------------------------------------
def _write_output(p: Path, data: bytes, force: bool) -> None:
    from codec.config import atomic_write
    from codec.preflight import output_file

    output_file(p, None, force)
    atomic_write(p, lambda tmp: tmp.write_bytes(data), force=True)


def _save_via(p: Path, save, force: bool) -> None:
    """Write a media file through ``save(tmp_path)`` (a writer that picks the format from the suffix), atomically."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=p.parent) as td:
        tmp = Path(td) / ("x" + p.suffix)
        save(tmp)
        _write_output(p, tmp.read_bytes(), force)


def encode_file(src, dst=None, model=None, *, quality: int | None = None, kbps: float | None = None,
                device=None, force: bool = False, size: tuple[int, int] | None = None, fps: float | None = None,
                intra_period: int | None = None, max_frames: int | None = None, progress=None) -> dict:
    """Encode a media file into a ``.cdc`` file (``dst`` default: ``src`` with suffix .cdc). The arguments and the
    input are checked first (:func:`codec.preflight.encode_plan`); never overwrites without ``force``, never the
    input. Returns a report: output path, bytes, rate, geometry, model, time."""
    import time

    from codec.media import audio_sample_format, load_audio, load_image, open_video
    from codec.preflight import encode_plan

    plan = encode_plan(src, dst, model, quality=quality, kbps=kbps, size=size, fps=fps, intra_period=intra_period,
                       max_frames=max_frames, force=force)
    src, dst, modality = Path(src), plan.output, plan.modality
    report = {"input": str(src), "output": str(dst), "modality": modality}
    if modality == "video":
        info, frames = open_video(src, size=size, fps=fps, max_frames=max_frames)
        m = _model_for(model, quality, "video", device)
        if progress is not None:
            progress = progress(info.frames, "encode")
        t0 = time.perf_counter()
        try:
            data = encode_video_frames(frames, info.width, info.height, info.fps_num, info.fps_den, m,
                                       intra_period=intra_period, progress=progress)
        finally:
            if progress is not None:
                progress.close()
        dt = time.perf_counter() - t0
        n = unpack(data)[0].geometry["frames"]
        _write_output(dst, data, force)
        secs = n * info.fps_den / info.fps_num
        report.update(bytes=len(data), kbps=len(data) * 8 / secs / 1000,
                      bpp=len(data) * 8 / (n * info.width * info.height), frames=n, width=info.width,
                      height=info.height, fps=info.fps, model=m.model_name, seconds=dt)
        return report
    if modality == "image":
        m = _model_for(model, quality, "image", device)
        rgb = load_image(src)
        t0 = time.perf_counter()
        data = encode_image(rgb, m, quality if getattr(m, "n_qualities", None) else None)  # else: picked the member
        dt = time.perf_counter() - t0
        _write_output(dst, data, force)
        h, w = rgb.shape[:2]
        report.update(bytes=len(data), bpp=len(data) * 8 / (h * w), width=w, height=h, model=m.model_name,
                      seconds=dt)
        return report
    samples, sr = load_audio(src)
    if model is None:  # the default audio model for this channel count
        model = default_audio_model(samples.shape[1])
    m = _model_for(model, None, "audio", device)
    t0 = time.perf_counter()
    data = encode_audio(samples, sr, m, kbps=kbps, sample_format=audio_sample_format(src))
    dt = time.perf_counter() - t0
    _write_output(dst, data, force)
    secs = samples.shape[0] / sr
    report.update(bytes=len(data), kbps=len(data) * 8 / secs / 1000, duration=secs, channels=samples.shape[1],
                  sample_rate=sr, model=m.model_name, seconds=dt)
    if hasattr(m, "codebooks_for_kbps"):
        nq = m.codebooks_for_kbps(kbps) if kbps is not None else m.n_codebooks
        report.update(codebooks=nq, nominal_kbps=m.kbps(nq))
    return report


def decode_file(src, dst=None, model=None, *, device=None, force: bool = False, compare=None,
                progress=None, blocks: int | None = None) -> dict:
    """Decode a ``.cdc`` file into a media file (``dst`` default: ``src`` with .png, .wav or .y4m). With
    ``compare`` (the original, checked before anything is decoded), the report also holds the rate and quality
    against it (the evaluation's metrics; a metric that is undefined for the input is None, with the reason in
    ``report["notes"]``). The output is written only when the decode succeeded (a divergence or corruption leaves
    nothing behind)."""
    import time

    from codec.preflight import decode_plan

    plan = decode_plan(src, dst, model, compare=compare, force=force, blocks=blocks)
    src, dst = Path(src), plan.output
    header, payload = plan.info["header"], plan.info["payload"]
    m = _header_model(header, model, header.modality, device, near=src)
    report = {"input": str(src), "output": str(dst), "modality": header.modality, "model": header.model}
    g = header.geometry
    size = src.stat().st_size
    if header.modality == "video":
        from codec.media import VideoWriter, open_video

        ref = None
        if compare:
            from codec.eval.metrics import psnr_yuv420_frame

            rinfo, ref = open_video(compare, size=(g["width"], g["height"]), fps=g["fps_num"] / g["fps_den"])
            if (rinfo.width, rinfo.height) != (g["width"], g["height"]):
                raise CodecError(f"--compare video is {rinfo.width}x{rinfo.height}, the decoded one "
                                 f"{g['width']}x{g['height']}")
        scores = []
        bar = progress(g["frames"], "decode") if progress is not None else None
        t0 = time.perf_counter()
        try:
            with VideoWriter(dst, g["width"], g["height"], g["fps_num"], g["fps_den"]) as w:
                for y, u, v in decode_video_frames(header, payload, m):
                    w.write(y, u, v)
                    if bar is not None:
                        bar.update(1)
                    if ref is not None:
                        r = next(ref, None)
                        if r is None:
                            raise CodecError(f"--compare video has fewer frames than the {g['frames']} decoded")
                        scores.append(psnr_yuv420_frame(r, (y, u, v))[3])
        finally:
            if bar is not None:
                bar.close()
        n = g["frames"]
        report.update(frames=n, width=g["width"], height=g["height"], seconds=time.perf_counter() - t0)
        if scores:
            report.update(kbps=size * 8 * g["fps_num"] / g["fps_den"] / n / 1000,
                          psnr_yuv=float(np.mean(scores)))
        return report
    if header.modality == "audio":
        from codec.media import load_audio, save_audio

        ref = None
        if compare:
            ref, rsr = load_audio(compare)
            if ref.shape != (g["samples"], g["channels"]) or rsr != g["sample_rate"]:
                raise CodecError(f"--compare audio is {ref.shape} at {rsr} Hz, the decoded one "
                                 f"{(g['samples'], g['channels'])} at {g['sample_rate']} Hz")
        t0 = time.perf_counter()
        samples, sr = decode_audio_payload(header, payload, m)
        report.update(seconds=time.perf_counter() - t0, duration=samples.shape[0] / sr, channels=samples.shape[1],
                      sample_rate=sr, sample_format=audio_sample_format_of(header) or "PCM_16")
        if ref is not None:
            from codec.eval.metrics import audio_quality

            report.update(kbps=size * 8 / report["duration"] / 1000, **audio_quality(ref, samples, sr, notes=True))
        _save_via(dst, lambda tmp: save_audio(tmp, samples, sr, report["sample_format"]), force)
        return report
    from codec.media import load_image, save_image

    ref = load_image(compare) if compare else None
    if ref is not None and ref.shape[:2] != (g["height"], g["width"]):
        raise CodecError(f"--compare image is {ref.shape[1]}x{ref.shape[0]}, the decoded one "
                         f"{g['width']}x{g['height']}")
    t0 = time.perf_counter()
    rgb = decode_image_payload(header, payload, m, blocks=blocks)
    report.update(seconds=time.perf_counter() - t0, width=rgb.shape[1], height=rgb.shape[0])
    if blocks is not None:
        report["blocks"] = blocks
    if ref is not None:
        from codec.eval.metrics import image_quality

        report.update(bpp=size * 8 / (rgb.shape[0] * rgb.shape[1]), **image_quality(ref, rgb, notes=True))
    _save_via(dst, lambda tmp: save_image(tmp, rgb), force)
    return report
