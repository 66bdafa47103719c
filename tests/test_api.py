"""The top-level API: codec.encode / codec.decode / codec.load_model on every kind of input the README lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import codec
from codec.errors import MediaError

SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "sample" / "kodim23.png"


def test_path_array_and_tensor_give_the_same_file(tmp_path):
    from codec.media import load_image

    model = codec.load_model("msh-q2")
    rgb = load_image(SAMPLE)[:96, :128]
    from_array = codec.encode(rgb, model)
    from PIL import Image

    Image.fromarray(rgb).save(tmp_path / "crop.png")
    assert codec.encode(tmp_path / "crop.png", model) == from_array
    t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    assert codec.encode(t, model) == from_array and codec.encode(t[None], model) == from_array
    assert codec.encode(rgb, "msh", quality=2) == from_array  # by family and quality
    (tmp_path / "a.cdc").write_bytes(from_array)
    out = codec.decode(tmp_path / "a.cdc")  # a path; the model the file names
    assert out.shape == rgb.shape and np.array_equal(out, codec.decode(from_array, model))


def test_audio_array_needs_its_rate_and_round_trips():
    sr = 16000
    t = np.arange(sr // 2) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
    data = codec.encode(x, sample_rate=sr, kbps=3)
    y, rate = codec.decode(data)
    assert rate == sr and y.shape == x.shape
    assert codec.encode(torch.from_numpy(x.T), sample_rate=sr, kbps=3) == data
    with pytest.raises(MediaError, match="sample_rate"):
        codec.encode(x)


def test_unclear_inputs_are_refused_with_one_line(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        codec.encode(tmp_path / "missing.png")
    with pytest.raises(MediaError, match="cannot tell"):
        codec.encode(np.zeros((4, 4), np.int16))
    with pytest.raises(MediaError, match="cannot tell"):
        codec.encode(torch.zeros(2, 5, 5, 5, 5))
