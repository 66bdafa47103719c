"""Every shipped model decodes the files it wrote before to the same output: tests/golden/shipped/ holds one file per
shipped family written by codec 0.1.0 (commit 854d837, before the codec framework was reorganised) and the hash of
what that build decoded it to with one thread (the float synthesis depends on the thread count; the symbols do
not). Re-encoding the same input gives the same bytes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "golden" / "shipped"
EXPECTED = json.loads((HERE / "expected.json").read_text())
sys.path.insert(0, str(HERE))
import make  # noqa: E402  (the inputs and hashes the golden files were made with)

sys.path.remove(str(HERE))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_old_files_decode_to_the_same_output(name):
    data = (HERE / EXPECTED[name]["file"]).read_bytes()
    assert make.short(data) == EXPECTED[name]["sha256_16"]
    assert make.output_hash(make.decode_one_thread(data)) == EXPECTED[name]["decoded_sha256_16"]


@pytest.mark.parametrize("name", ["msh-q4", "walloc-rgb16x", "rvqgan-speech16k"])
def test_encoding_again_gives_the_same_bytes(name):
    assert make.short(make.inputs()[name]()) == EXPECTED[name]["sha256_16"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_encoding_again_gives_the_same_bytes_long(name):
    assert make.short(make.inputs()[name]()) == EXPECTED[name]["sha256_16"]
