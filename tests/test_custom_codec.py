"""docs/custom_codec.md end to end: its example codec (the file docs/examples/tiny_codec.py, which the page
carries verbatim) trains through train/fit.py, exports to a standalone file, codes an image through the CLI with
--model FILE.pt, and goes through `codec eval`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "tiny_codec.py"


def test_the_page_carries_the_example_file():
    page = (ROOT / "docs" / "custom_codec.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert EXAMPLE.read_text() in blocks, "docs/custom_codec.md must show docs/examples/tiny_codec.py verbatim"


def test_a_subclass_of_a_shipped_family_exports_and_loads_under_its_own_name(tmp_path, monkeypatch):
    """A researcher's variant of a shipped family, in a module of their own (not registered by a decorator): its
    checkpoint records its class and module, and loading finds it there."""
    (tmp_path / "my_variant.py").write_text(
        "from codec.codecs.image import ScaleHyperprior\n\n\n"
        "class WideHyperprior(ScaleHyperprior):\n"
        "    codec_name = 'wide-hyperprior'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_variant

    from codec.checkpoints import load_checkpoint_file

    m = my_variant.WideHyperprior(N=8, M=12).eval()
    with torch.no_grad():
        m(torch.rand(1, 3, 64, 64))
    torch.save(m.export("wide", {"note": "untrained"}), tmp_path / "wide.pt")
    ck = torch.load(tmp_path / "wide.pt", weights_only=True)
    assert ck["codec"] == "WideHyperprior" and ck["module"] == "my_variant"
    back = load_checkpoint_file(tmp_path / "wide.pt")
    assert type(back) is my_variant.WideHyperprior and back.fingerprint() == m.fingerprint()
    x = torch.rand(1, 3, 40, 50)
    assert torch.equal(back.decompress(m.compress(x)), m.decompress(m.compress(x)))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from conftest import write_image_folders

    return write_image_folders(tmp_path_factory.mktemp("imgs"), {"train": 4, "val": 2}, (9, 11))


def _run(args, env, timeout=600):
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def test_train_export_code_and_evaluate(images, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(EXAMPLE.parent), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    run = tmp_path / "run"
    _run([sys.executable, "train/fit.py", "fit", "--config", "docs/examples/tiny_codec.yaml",
          "--trainer.max_steps=3", f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
          f"--trainer.callbacks.init_args.dirpath={run / 'checkpoints'}", "--trainer.limit_val_batches=0",
          "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu", "--model.codec.init_args.width=8",
          f"--data.init_args.train_dirs=[{images / 'train'}]", f"--data.init_args.val_dir={images / 'val'}",
          "--data.init_args.crop_size=32", "--data.init_args.batch_size=2", "--data.init_args.val_crop_size=32"],
         env)
    ck = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ck["global_step"] == 3 and ck["hyper_parameters"]["codec"]["class_path"] == "tiny_codec.TinyHyperprior"

    codec = [sys.executable, "-m", "codec"]
    model = tmp_path / "tiny.pt"
    r = _run(codec + ["export", str(run / "checkpoints" / "last.ckpt"), "-o", str(model)], env)
    assert "TinyHyperprior" in r.stdout
    shipped = torch.load(model, weights_only=True)
    assert shipped["codec"] == "TinyHyperprior" and shipped["module"] == "tiny_codec"
    assert set(shipped["tables"]) == {"y", "z"} and shipped["config"] == {"class": "TinyHyperprior", "width": 8}
    assert not (ROOT / "checkpoints" / "tiny.pt").exists()  # nothing written into the package

    src = images / "val" / "0.png"
    _run(codec + ["encode", str(src), "-o", str(tmp_path / "a.cdc"), "--model", str(model)], env)
    r = _run(codec + ["decode", str(tmp_path / "a.cdc"), "-o", str(tmp_path / "a.png"), "--model", str(model),
                      "--compare", str(src)], env)
    assert "PSNR" in r.stdout
    info = json.loads(_run(codec + ["info", str(tmp_path / "a.cdc")], env).stdout)
    assert info["codec"] == "tiny-hyperprior" and info["model"] == "tiny" and set(info["streams"]) == {"z", "y"}
    back = np.asarray(Image.open(tmp_path / "a.png"))
    assert back.shape == np.asarray(Image.open(src)).shape

    # the same file decodes through the Python API to the same pixels
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import codec as api

        m = api.load_model(str(model))
        assert np.array_equal(api.decode(tmp_path / "a.cdc", m), back)
        assert api.encode(str(src), m) == (tmp_path / "a.cdc").read_bytes()
    finally:
        sys.path.remove(str(EXAMPLE.parent))

    out = tmp_path / "eval"
    _run(codec + ["eval", "--dataset", str(images / "val"), "--codecs", f"jpeg,{model}", "--points", "jpeg=50",
                  "--out", str(out), "--no-msssim", "--no-plots", "--quiet", "--no-cache"], env)
    res = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in out.glob("*.json")
           if "results" in json.loads(p.read_text())}
    ours = [v for k, v in res.items() if "TinyHyperprior" in k]
    assert ours, sorted(res)
    assert ours[0]["results"]["bpp"][0] > 0 and ours[0]["results"]["psnr-rgb"][0] > 5
