"""Every shipped model decodes the files it wrote before to the same output: tests/golden/shipped/v2/ holds one file
per shipped family written by codec 0.1.0 (commit 854d837, container format 2) and the hash of what that build
decoded it to with one thread (the float synthesis depends on the thread count; the symbols do not); v3/ holds the
same inputs in the current format. Both decode to the same output, and re-encoding gives the v3 bytes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "golden" / "shipped"
VERSIONS = ("v2", "v3")
EXPECTED = {v: json.loads((HERE / v / "expected.json").read_text()) for v in VERSIONS}
sys.path.insert(0, str(HERE))
import make  # noqa: E402  (the inputs and hashes the golden files were made with)

sys.path.remove(str(HERE))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(EXPECTED["v2"]))
def test_files_decode_to_the_same_output(name, version):
    e = EXPECTED[version][name]
    data = (HERE / version / e["file"]).read_bytes()
    assert make.short(data) == e["sha256_16"]
    assert make.output_hash(make.decode_one_thread(data)) == e["decoded_sha256_16"]
    assert e["decoded_sha256_16"] == EXPECTED["v2"][name]["decoded_sha256_16"]  # a format change, not a model one


@pytest.mark.parametrize("name", ["msh-q4", "walloc-rgb16x", "rvqgan-speech16k"])
def test_encoding_again_gives_the_same_bytes(name):
    assert make.short(make.inputs()[name]()) == EXPECTED["v3"][name]["sha256_16"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED["v3"]))
def test_encoding_again_gives_the_same_bytes_long(name):
    assert make.short(make.inputs()[name]()) == EXPECTED["v3"][name]["sha256_16"]
