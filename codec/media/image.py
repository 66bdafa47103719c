"""Images: files -> RGB uint8 (H, W, 3) under the conversion rules of :mod:`codec.media`, and back."""

from __future__ import annotations

import io

import numpy as np

from codec.errors import MediaError
from codec.media.common import IMAGE_EXTENSIONS, _existing


def image_to_rgb8(img) -> np.ndarray:
    """Apply the documented conversion rules to a PIL image; returns uint8 (H, W, 3)."""
    from PIL import Image

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        scale = 257.0 if img.mode.startswith("I;16") or a.max() > 255 else 1.0
        if img.mode == "F" and a.max() <= 1.0:
            scale = 1.0 / 255.0
        a = np.clip(np.round(a / scale), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def load_image(path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3) under the module's conversion rules."""
    from PIL import Image, UnidentifiedImageError

    from codec.preflight import probe_image

    p = _existing(path)
    if p.stat().st_size == 0:
        raise MediaError(f"{p} is empty (0 bytes)")
    probe_image(p)  # its size before a pixel is decoded (decompression bombs)
    try:
        with Image.open(p) as img:
            img.load()
            out = image_to_rgb8(img)
    except UnidentifiedImageError:
        raise MediaError(f"{p}: not an image format this package reads ({', '.join(sorted(IMAGE_EXTENSIONS))})") \
            from None
    except (OSError, ValueError) as e:
        raise MediaError(f"{p}: cannot decode image ({e})") from None
    if out.shape[0] < 1 or out.shape[1] < 1:
        raise MediaError(f"{p}: empty image")
    return out


def decode_image_bytes(data: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return image_to_rgb8(img)
    except Exception as e:  # noqa: BLE001 - any decoder failure is a media error here
        raise MediaError(f"cannot decode image bytes ({e})") from None


def save_image(path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path)
