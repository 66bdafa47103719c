"""The command line: `codec info`, `codec models`, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"


def run(*args):
    return subprocess.run([sys.executable, "-m", "codec", *args], capture_output=True, text=True)


def test_info_prints_header():
    r = run("info", str(GOLDEN / "container_v3.cdc"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["codec"] == "test/golden" and info["geometry"] == {"height": 4, "width": 12, "channels": 1}
    assert info["streams"] == {"y": len((GOLDEN / "entropy_v2.bin").read_bytes()), "side": 2}


def test_errors_are_one_line(tmp_path):
    r = run("info", str(tmp_path / "nope.cdc"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
    bad = tmp_path / "bad.cdc"
    data = bytearray((GOLDEN / "container_v3.cdc").read_bytes())
    data[40] ^= 0xFF
    bad.write_bytes(bytes(data))
    r = run("info", str(bad))
    assert r.returncode == 2 and "CRC" in r.stderr and "Traceback" not in r.stderr
    r = run("info", str(tmp_path))
    assert r.returncode == 2 and "not a file" in r.stderr


def test_models_lists_manifest():
    from codec.checkpoints import load_manifest

    r = run("models")
    assert r.returncode == 0, r.stderr
    manifest = load_manifest()
    lines = r.stdout.splitlines()
    for m in manifest["models"]:
        (line,) = [ln for ln in lines if ln.split()[0] == m["name"]]
        assert m["codec"] in line
        if (m.get("config") or {}).get("qualities"):
            assert f"q1..q{m['config']['qualities']} (one model)" in line
        else:
            assert (f"{m['family']} q{m['quality']}" if m.get("family") else " - ") in line
        assert f"{m['bytes'] / 1e6:.1f} MB" in line, line
        rd = m.get("rd") or {}
        for audio_set in ("speech-test", "speech-heldout", "music-heldout"):  # every audio model shows its points
            if rd.get(audio_set):
                p = rd[audio_set][-1] if isinstance(rd[audio_set], list) else rd[audio_set]
                assert f"{audio_set}: " in line and f"{p['kbps']:.1f} kbps mel {p['mel-distance']:.2f}" in line, line
                break
    assert "None" not in r.stdout and "{" not in r.stdout  # no raw Python values
    for modality in manifest["defaults"]:
        assert any(ln.startswith(f"default {modality} model:") for ln in lines)


def test_coding_does_not_import_the_training_stack(tmp_path):
    """`codec encode` / `codec decode` never import Lightning, torchmetrics, torchvision or CompressAI's model zoo
    (seconds of start-up for a command that codes an image in well under one)."""
    sample = Path(__file__).resolve().parent.parent / "docs" / "sample" / "kodim23.png"
    heavy = ("lightning", "torchmetrics", "torchvision", "torch._dynamo", "compressai.zoo", "compressai.datasets",
             "scipy.stats._stats_py", "codec.train", "codec.eval")
    code = ("import sys; from codec.cli import main; "
            f"assert main(['encode', {str(sample)!r}, '-o', {str(tmp_path / 'a.cdc')!r}]) == 0; "
            f"assert main(['decode', {str(tmp_path / 'a.cdc')!r}, '-o', {str(tmp_path / 'a.png')!r}]) == 0; "
            f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "a.png").stat().st_size > 0
