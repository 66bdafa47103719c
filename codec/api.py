"""The public coding API: the one data path every user (CLI, RD evaluation, MPQ tests) goes through.

    from codec.api import encode_image, decode
    data = encode_image(rgb_uint8)                 # default image model, middle quality -> container bytes
    data = encode_image(rgb_uint8, model="msh", quality=5)
    rgb = decode(data)                             # loads the model the header names, checks its fingerprint

encode: RGB uint8 (H, W, 3) -> float tensor in [0, 1] -> model.compress (quantised symbols -> codec.entropy bytes)
-> codec.bitstream container (geometry, model name, checkpoint and table fingerprints, symbols checksum).
decode: container -> model named in the header (its fingerprint must match) -> model.decompress -> checksum of
the decoded symbols verified -> RGB uint8.
"""

from __future__ import annotations

import numpy as np
import torch

from codec.bitstream import Header, pack, symbols_checksum, unpack, verify_symbols, check_checkpoint
from codec.errors import BitstreamError, CodecError, MediaError

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
    return (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def image_header(model, h: int, w: int, symbols) -> Header:
    return Header(codec=model.codec_name, modality="image", geometry={"height": h, "width": w, "channels": 3},
                  model=getattr(model, "model_name", ""), checkpoint_fingerprint=model.fingerprint(),
                  table_fingerprint=model.table_fingerprint(), symbols_checksum=symbols_checksum(*symbols))


def encode_image(rgb: np.ndarray, model=None, quality: int | None = None) -> bytes:
    """Container bytes for an RGB uint8 image. ``model``: a loaded codec, a shipped name/family, a .pt path, or
    None for the default image model (at its default quality unless ``quality`` is given)."""
    from codec.checkpoints import load_model

    if model is None or isinstance(model, str):
        model = load_model(model, quality, "image")
    x = _to_tensor(rgb)
    with torch.inference_mode():
        payload, symbols = model.compress(x)
    return pack(image_header(model, x.shape[2], x.shape[3], symbols), payload)


def decode(data: bytes, model=None) -> np.ndarray:
    """Decode container bytes. ``model``: a loaded codec, or None to load the one the header names."""
    header, payload = unpack(data)
    if header.modality != "image":
        raise BitstreamError(f"this is a {header.modality} bitstream; only image decoding is available")
    return decode_image_payload(header, payload, model)


def decode_image_payload(header: Header, payload, model=None) -> np.ndarray:
    from codec.checkpoints import load_model

    if model is None:
        if not header.model:
            raise BitstreamError("the bitstream does not name its model; pass --model")
        try:
            model = load_model(header.model, None, "image")
        except CodecError as e:
            raise BitstreamError(f"this file needs model {header.model!r}, which cannot be loaded: {e}") from None
    check_checkpoint(header, model.codec_name, model.fingerprint(), getattr(model, "model_name", ""))
    h, w = header.geometry["height"], header.geometry["width"]
    if tuple(payload.ints.get("size", ())) != (h, w):
        raise BitstreamError(f"payload size {payload.ints.get('size')} disagrees with the header ({h}x{w})")
    if h * w > MAX_PIXELS:
        raise BitstreamError(f"header says {w}x{h}, larger than the {MAX_PIXELS >> 20} Mpixel limit")
    with torch.inference_mode():
        x_hat, symbols = model.decompress(payload)
    verify_symbols(header, *symbols)
    return _to_rgb8(x_hat)
