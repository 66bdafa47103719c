"""Packaging: the layout of DESIGN.md works as an editable install and as a plain wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_installed_versions_are_the_pinned_ones():
    """Every ``==`` pin of pyproject.toml (dependencies and the test extra) is what is installed, and the pinned
    training and coding stack imports together."""
    import importlib.metadata as md
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"] + project["optional-dependencies"]["test"]
    wrong = []
    for spec in pins:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([0-9][^;\s]*)", spec.strip())
        assert m, f"not an exact pin: {spec}"
        name, version = m.group(1), m.group(3)
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            wrong.append(f"{name} not installed")
            continue
        if have.split("+")[0] != version:
            wrong.append(f"{name} {have} (pinned {version})")
    assert not wrong, wrong
    import compressai  # noqa: F401
    import lightning  # noqa: F401
    import torchaudio  # noqa: F401
    import torchvision  # noqa: F401


def test_subpackages_map_to_top_level_folders():
    import codec.codecs
    import codec.entropy
    import codec.eval
    import codec.train

    assert Path(codec.entropy.__file__).parent == ROOT / "entropy"
    assert Path(codec.codecs.__file__).parent == ROOT / "codecs"
    assert Path(codec.train.__file__).parent == ROOT / "train"
    assert Path(codec.eval.__file__).parent == ROOT / "eval"
    import codecs  # the standard-library module must not be shadowed

    assert hasattr(codecs, "lookup")


def test_plain_wheel_install_imports(tmp_path):
    """`pip install .` (a wheel, not the editable install) gives a working package: the entropy layer, and the
    default image model coding through the top-level API."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheel_dir), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = wheel_dir.glob("codec-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "codec = codec.cli:main" in z.read(entry_points).decode()
    assert "codec/entropy/coder.py" in names and "codec/bitstream.py" in names
    assert {"codec/codecs/base.py", "codec/media/video.py", "codec/eval/mpq/runner.py", "codec/train/task.py",
            "codec/codecs/video/modes.py"} <= set(names)
    # the shipped checkpoints travel with the wheel (as codec.weights)
    assert "codec/weights/manifest.json" in names
    shipped = [m["file"] for m in __import__("json").loads((ROOT / "checkpoints" / "manifest.json").read_text())["models"]]
    assert all(f"codec/weights/{f}" in names for f in shipped)
    assert not any(n.startswith(("codecs/", "entropy/", "train/", "eval/")) for n in names)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path)
    code = ("import codec, codec.entropy, codec.bitstream, numpy as np;"
            "t = codec.entropy.CdfTables.from_pmfs([[0.5, 0.5]], [0]);"
            "assert (codec.entropy.decode(codec.entropy.encode(np.arange(3), None, t), None, t, shape=3)"
            " == np.arange(3)).all();"
            "from codec.checkpoints import checkpoints_dir, load_manifest;"
            "assert str(checkpoints_dir()).startswith(codec.entropy.__file__.rsplit('/codec/', 1)[0]);"
            "load_manifest();"
            "m = codec.load_model(); rgb = np.full((20, 30, 3), 128, np.uint8);"
            "assert codec.decode(codec.encode(rgb, m), m).shape == (20, 30, 3);"
            "print(codec.entropy.__file__)")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().startswith(str(target)), out.stdout


def test_data_setting_reports_missing_files(monkeypatch, tmp_path):
    from codec.config import data_path, data_root
    from codec.errors import MediaError

    monkeypatch.setenv("CODEC_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    with pytest.raises(MediaError, match="CODEC_DATA"):
        data_path("images", "kodak", "kodim01.png")
