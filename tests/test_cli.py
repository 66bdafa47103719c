"""The command line: `codec info`, `codec models`, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"


def run(*args):
    return subprocess.run([sys.executable, "-m", "codec", *args], capture_output=True, text=True)


def test_info_prints_header():
    r = run("info", str(GOLDEN / "container_v2.cdc"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["codec"] == "test/golden" and info["geometry"] == {"height": 4, "width": 12, "channels": 1}
    assert info["streams"] == {"y": len((GOLDEN / "entropy_v1.bin").read_bytes()), "side": 2}


def test_errors_are_one_line(tmp_path):
    r = run("info", str(tmp_path / "nope.cdc"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
    bad = tmp_path / "bad.cdc"
    data = bytearray((GOLDEN / "container_v2.cdc").read_bytes())
    data[40] ^= 0xFF
    bad.write_bytes(bytes(data))
    r = run("info", str(bad))
    assert r.returncode == 2 and "CRC" in r.stderr and "Traceback" not in r.stderr
    r = run("info", str(tmp_path))
    assert r.returncode == 2 and "not a file" in r.stderr


def test_models_lists_manifest():
    r = run("models")
    assert r.returncode == 0, r.stderr
