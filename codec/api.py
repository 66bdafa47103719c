"""The public coding API: the one data path every user (CLI, RD evaluation, MPQ tests) goes through.

    from codec.api import encode_image, decode
    data = encode_image(rgb_uint8)                 # default image model, middle quality -> container bytes
    data = encode_image(rgb_uint8, model="msh", quality=5)
    rgb = decode(data)                             # loads the model the header names, checks its fingerprint
    data = encode_audio(samples, 44100)            # default audio model; decode(data) -> (samples, rate)
    data = encode_video(video)                     # codec.media.Video (4:2:0); decode(data) -> Video

encode: RGB uint8 (H, W, 3) -> float tensor in [0, 1] -> model.compress (quantised symbols -> codec.entropy bytes)
-> codec.bitstream container (geometry, model name, checkpoint and table fingerprints, symbols checksum).
decode: container -> model named in the header (its fingerprint must match) -> model.decompress -> checksum of
the decoded symbols verified -> RGB uint8.
"""

from __future__ import annotations

import numpy as np
import torch

import contextlib

from codec.bitstream import DIVERGED, Header, pack, symbols_checksum, unpack, verify_symbols, check_checkpoint
from codec.errors import BitstreamError, CodecError, DivergenceError, MediaError

MAX_PIXELS = 1 << 26  # 64 Mpixel: larger inputs are refused rather than exhausting memory


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


def image_header(model, h: int, w: int, symbols) -> Header:
    return Header(codec=model.codec_name, modality="image", geometry={"height": h, "width": w, "channels": 3},
                  model=getattr(model, "model_name", ""), checkpoint_fingerprint=model.fingerprint(),
                  table_fingerprint=model.table_fingerprint(), symbols_checksum=symbols_checksum(*symbols))


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


def encode_image(rgb: np.ndarray, model=None, quality: int | None = None, device=None) -> bytes:
    """Container bytes for an RGB uint8 image. ``model``: a loaded codec, a shipped name/family, a .pt path, or
    None for the default image model (at its default quality unless ``quality`` is given). ``device``: where the
    model runs (see :func:`place`)."""
    from codec.checkpoints import load_model

    if model is None or isinstance(model, str):
        model = load_model(model, quality, "image")
    _check_modality(model, "image")
    model = place(model, device)
    x = _to_tensor(rgb).to(_device_of(model))
    with torch.inference_mode():
        payload, symbols = model.compress(x)
    return pack(image_header(model, x.shape[2], x.shape[3], symbols), payload)


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


def decode(data: bytes, model=None, device=None):
    """Decode container bytes: an RGB uint8 array for an image, ``(samples (T, C) float32, sample_rate)`` for
    audio, a :class:`codec.media.Video` for video. ``model``: a loaded codec, or None to load the one the header
    names. ``device``: where the model runs (see :func:`place`); a file decodes the same on any device."""
    header, payload = unpack(data)
    if header.modality == "image":
        return decode_image_payload(header, payload, model, device)
    if header.modality == "audio":
        return decode_audio_payload(header, payload, model, device)
    if header.modality == "video":
        return decode_video(header, payload, model, device)
    raise BitstreamError(f"this is a {header.modality} bitstream; decoding {header.modality} is not available yet")


def _header_model(header: Header, model, modality: str, device=None):
    from codec.checkpoints import load_model

    if model is None:
        if not header.model:
            raise BitstreamError("the bitstream does not name its model; pass --model")
        try:
            model = load_model(header.model, None, modality)
        except CodecError as e:
            raise BitstreamError(f"this file needs model {header.model!r}, which cannot be loaded: {e}") from None
    _check_modality(model, modality)
    return place(model, device)


def decode_image_payload(header: Header, payload, model=None, device=None) -> np.ndarray:
    model = _header_model(header, model, "image", device)
    check_checkpoint(header, model.codec_name, model.fingerprint(), getattr(model, "model_name", ""))
    h, w = header.geometry["height"], header.geometry["width"]
    if tuple(payload.ints.get("size", ())) != (h, w):
        raise BitstreamError(f"payload size {payload.ints.get('size')} disagrees with the header ({h}x{w})")
    if h * w > MAX_PIXELS:
        raise BitstreamError(f"header says {w}x{h}, larger than the {MAX_PIXELS >> 20} Mpixel limit")
    with torch.inference_mode(), _diverged():
        x_hat, symbols = model.decompress(payload)
    verify_symbols(header, *symbols)
    return _to_rgb8(x_hat)


# --------------------------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------------------------
MAX_AUDIO_SAMPLES = 1 << 34


def _resample(x: torch.Tensor, sr_from: int, sr_to: int) -> torch.Tensor:
    if sr_from == sr_to:
        return x
    import torchaudio.functional as AF

    return AF.resample(x, int(sr_from), int(sr_to))


def default_audio_model(channels: int) -> str:
    """The manifest's default audio model for ``channels``: ``defaults["audio-stereo"]`` for two or more channels
    when the manifest has one, else ``defaults["audio"]``."""
    from codec.checkpoints import load_manifest
    from codec.errors import CheckpointError

    d = load_manifest().get("defaults", {})
    name = d.get("audio-stereo") if channels >= 2 and d.get("audio-stereo") else d.get("audio")
    if not name:
        raise CheckpointError("no default audio model is shipped (checkpoints/manifest.json); name one with --model")
    return name["family"] if isinstance(name, dict) else name


def encode_audio(samples: np.ndarray, sample_rate: int, model=None, kbps: float | None = None, device=None) -> bytes:
    """Container bytes for audio ``samples`` (T, C) float in [-1, 1] at ``sample_rate``. The signal is resampled to
    the model's rate and its channels mapped to the model's (mono is duplicated into a stereo model, a mono model
    codes the mean); decoding restores the original rate, channel count and length. ``kbps``: for models with a
    variable rate (RVQGAN), the nominal bitrate, which picks the number of codebooks (default: all of them).
    ``model=None`` picks the default audio model for the channel count (:func:`default_audio_model`)."""
    from codec.checkpoints import load_model

    a = np.asarray(samples, dtype=np.float32)
    if model is None:
        model = default_audio_model(a.shape[1] if a.ndim == 2 else 1)
    if isinstance(model, str):
        model = load_model(model, None, "audio")
    _check_modality(model, "audio")
    model = place(model, device)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise MediaError(f"expected audio samples (T, C), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MediaError("audio contains NaN or infinite samples")
    t, c = a.shape
    mc = model.channels
    if c != mc and not (c == 1 or mc == 1):
        raise MediaError(f"model {model.model_name!r} codes {mc} channel(s); this audio has {c} (mono, or exactly "
                         f"{mc}, are accepted)")
    if not 1 <= int(sample_rate) <= 384000:
        raise MediaError(f"unsupported sample rate {sample_rate}")
    x = torch.from_numpy(np.ascontiguousarray(a.T))
    x = x.repeat(mc, 1) if c == 1 and mc > 1 else (x.mean(0, keepdim=True) if mc == 1 and c > 1 else x)
    x = _resample(x, sample_rate, model.sample_rate)[None].clamp(-1, 1).to(_device_of(model))
    if kbps is not None and not hasattr(model, "codebooks_for_kbps"):
        raise CodecError(f"model {getattr(model, 'model_name', type(model).__name__)!r} has one fixed rate; "
                         "--kbps applies to RVQGAN models")
    with torch.inference_mode():
        payload, symbols = model.compress(x) if kbps is None else model.compress(x, kbps=kbps)
    header = Header(codec=model.codec_name, modality="audio",
                    geometry={"samples": t, "channels": c, "sample_rate": int(sample_rate)},
                    model=getattr(model, "model_name", ""), checkpoint_fingerprint=model.fingerprint(),
                    table_fingerprint=model.table_fingerprint(), symbols_checksum=symbols_checksum(*symbols))
    return pack(header, payload)


def decode_audio_payload(header: Header, payload, model=None, device=None) -> tuple[np.ndarray, int]:
    model = _header_model(header, model, "audio", device)
    check_checkpoint(header, model.codec_name, model.fingerprint(), getattr(model, "model_name", ""))
    t, c, sr = (int(header.geometry[k]) for k in ("samples", "channels", "sample_rate"))
    if not (0 < t <= MAX_AUDIO_SAMPLES and 0 < c <= 64 and 0 < sr <= 384000):
        raise BitstreamError(f"audio geometry out of range: {t} samples, {c} channels, {sr} Hz")
    with torch.inference_mode(), _diverged():
        x_hat, symbols = model.decompress(payload)
    verify_symbols(header, *symbols)
    y = _resample(x_hat[0].cpu(), model.sample_rate, sr)
    if y.shape[1] < t:
        y = torch.nn.functional.pad(y, (0, t - y.shape[1]))
    y = y[:, :t]
    mc = y.shape[0]
    if c != mc:
        y = y.mean(0, keepdim=True) if c == 1 else y.repeat(c, 1)
    return y.clamp(-1, 1).T.contiguous().numpy(), sr


# --------------------------------------------------------------------------------------------------------------
# video
# --------------------------------------------------------------------------------------------------------------
MAX_VIDEO_PIXELS = 1 << 24  # per frame (16 Mpixel)


def _video_model(model, quality, device=None):
    from codec.checkpoints import load_model

    if model is None or isinstance(model, str):
        model = load_model(model, quality, "video")
    _check_modality(model, "video")
    return place(model, device)


def encode_video_frames(frames, width: int, height: int, fps_num: int, fps_den: int, model=None,
                        quality: int | None = None, intra_period: int | None = None, progress=None,
                        device=None) -> bytes:
    """Container bytes for an iterable of 4:2:0 frames ``(Y, U, V)`` uint8, coded one at a time (memory bounded by
    one frame and one segment). ``model``: a loaded video codec, a shipped name / family (+ ``quality``), or None
    for the default video model. ``intra_period``: one intra frame per N (default: the model's, 32; 1 = every
    frame intra, 0 = only the first). ``progress``: an object with ``update(n)`` (e.g. tqdm)."""
    model = _video_model(model, quality, device)
    if not (0 < width and 0 < height and width * height <= MAX_VIDEO_PIXELS):
        raise MediaError(f"unsupported frame size {width}x{height}")
    if not (0 < fps_num < 1 << 31 and 0 < fps_den < 1 << 31):
        raise MediaError(f"bad frame rate {fps_num}/{fps_den}")
    with torch.inference_mode():
        payload, checksum, n = model.encode_frames(frames, height, width, intra_period, progress)
    header = Header(codec=model.codec_name, modality="video",
                    geometry={"frames": n, "height": height, "width": width, "channels": 3,
                              "fps_num": int(fps_num), "fps_den": int(fps_den)},
                    model=getattr(model, "model_name", ""), checkpoint_fingerprint=model.fingerprint(),
                    table_fingerprint=model.table_fingerprint(), symbols_checksum=checksum)
    return pack(header, payload)


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
    from codec.bitstream import SymbolsHasher

    model = _header_model(header, model, "video", device)
    check_checkpoint(header, model.codec_name, model.fingerprint(), getattr(model, "model_name", ""))
    g = header.geometry
    n, h, w = int(g["frames"]), int(g["height"]), int(g["width"])
    if h * w > MAX_VIDEO_PIXELS or n < 1:
        raise BitstreamError(f"video geometry out of range: {n} frames of {w}x{h}")
    if tuple(payload.ints.get("size", ())) != (h, w):
        raise BitstreamError(f"payload size {payload.ints.get('size')} disagrees with the header ({h}x{w})")
    hasher = SymbolsHasher()
    with torch.inference_mode(), _diverged():
        yield from model.decode_frames(payload, n, hasher)
    if hasher.digest() != header.symbols_checksum:
        raise DivergenceError(DIVERGED.format(detail="symbols checksum mismatch after the last frame"))


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
