"""Media I/O conversion rules and errors."""

import numpy as np
import pytest
from PIL import Image

from codec.errors import MediaError
from codec.media import load_image, load_y4m, save_y4m, Video


def test_image_conversion_rules(tmp_path):
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(g).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (3, 4, 3) and np.array_equal(out[..., 0], g) and np.array_equal(out[..., 2], g)

    g16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert np.array_equal(out[..., 1], np.round(g16 / 257).astype(np.uint8))

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent becomes white
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 1]) == (255, 255, 255)

    p = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p.save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[0, 1]) == (200, 100, 50)

    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "one.png")
    assert load_image(tmp_path / "one.png").shape == (1, 1, 3)


def test_image_errors(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(MediaError, match="not an image format"):
        load_image(tmp_path / "text.png")


def test_y4m_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    v = Video(rng.integers(0, 256, (3, 6, 8), dtype=np.uint8), rng.integers(0, 256, (3, 3, 4), dtype=np.uint8),
              rng.integers(0, 256, (3, 3, 4), dtype=np.uint8), 30000, 1001)
    save_y4m(tmp_path / "v.y4m", v)
    w = load_y4m(tmp_path / "v.y4m")
    assert np.array_equal(w.y, v.y) and np.array_equal(w.v, v.v) and (w.fps_num, w.fps_den) == (30000, 1001)
    data = (tmp_path / "v.y4m").read_bytes()
    (tmp_path / "t.y4m").write_bytes(data[:-5])
    with pytest.raises(MediaError, match="truncated"):
        load_y4m(tmp_path / "t.y4m")
