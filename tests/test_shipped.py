"""The shipped checkpoints: manifest, files, the default model, the CLI on the sample image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec.checkpoints import checkpoints_dir, load_manifest, load_model, resolve_entry, sha256_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "sample" / "kodim23.png"


def _ladder():
    return [m for m in load_manifest()["models"] if m.get("family") == "msh"]


def test_manifest_ladder():
    ladder = _ladder()
    assert len(ladder) >= 5
    assert [m["quality"] for m in ladder] == list(range(1, len(ladder) + 1))
    lambdas = [m["training"]["lambda"] for m in ladder]
    assert lambdas == sorted(lambdas) and len(set(lambdas)) == len(lambdas)
    for m in ladder:
        f = checkpoints_dir() / m["file"]
        assert f.stat().st_size == m["bytes"] < 8 << 20, "shipped files stay small"
        assert sha256_file(f) == m["sha256"]
        assert m["codec"] == "MeanScaleHyperprior"
        t = m["training"]
        for k in ("data", "steps", "batch", "crop", "lambda", "hardware"):
            assert t.get(k), f"{m['name']}: manifest lacks training.{k}"
        assert not any("kodak" in d.lower() or "clic" in d.lower() for d in t["data"])
    d = load_manifest()["defaults"]["image"]
    assert resolve_entry()["family"] == d["family"] == "msh"


def test_ladder_rates_increase_on_sample():
    from codec.api import decode, encode_image
    from codec.eval.metrics import psnr_rgb
    from codec.media import load_image

    img = load_image(SAMPLE)[:256, :384]
    bpp, psnr = [], []
    for m in _ladder():
        model = load_model(m["name"])
        data = encode_image(img, model)
        rec = decode(data)  # the header names the model: loaded from the manifest
        bpp.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
        psnr.append(psnr_rgb(img, rec))
    assert bpp == sorted(bpp) and psnr == sorted(psnr), (bpp, psnr)
    assert psnr[-1] > 30


def test_cli_quickstart(tmp_path):
    """The README's main Quick-start job: encode + decode the shipped sample with the default model."""
    out, rec = tmp_path / "s.cdc", tmp_path / "s.png"
    codec = [sys.executable, "-m", "codec"]
    r = subprocess.run(codec + ["encode", str(SAMPLE), "-o", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "bpp" in r.stdout and "encode" in r.stdout
    r = subprocess.run(codec + ["decode", str(out), "-o", str(rec), "--compare", str(SAMPLE)], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "PSNR" in r.stdout and "bpp" in r.stdout
    # no overwrite without --force; the existing file is untouched
    before = out.read_bytes()
    r = subprocess.run(codec + ["encode", str(SAMPLE), "-o", str(out), "--quality", "1"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode != 0 and "exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before
    r = subprocess.run(codec + ["encode", str(SAMPLE), "-o", str(out), "--quality", "1", "--force"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and out.read_bytes() != before


@pytest.mark.parametrize("args, message", [
    (["encode", "missing.png"], "no such file"),
    (["encode", "{sample}", "-o", "{tmp}/x.cdc", "--model", "nope"], "unknown model"),
    (["encode", "{sample}", "-o", "{tmp}/x.cdc", "--quality", "99"], "qualities"),
    (["encode", "{tmp}/notimage.png", "-o", "{tmp}/y.cdc"], "not an image"),
    (["decode", "{tmp}/notimage.png", "-o", "{tmp}/z.png"], "bitstream"),
    (["decode", "{tmp}/trunc.cdc", "-o", "{tmp}/z.png"], "truncated"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    from codec.api import encode_image
    from codec.media import load_image

    (tmp_path / "notimage.png").write_bytes(b"hello, not a png")
    data = encode_image(load_image(SAMPLE)[:64, :64])
    (tmp_path / "trunc.cdc").write_bytes(data[: len(data) // 2])
    argv = [a.format(sample=SAMPLE, tmp=tmp_path) for a in args]
    r = subprocess.run([sys.executable, "-m", "codec", *argv], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr
