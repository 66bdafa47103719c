"""MPQ: the task runner on a handful of items, its outputs, and the shipped CIFAR-10 CNN."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from codec.errors import CodecError
from codec.eval.baselines import RDCodec, get_codec
from codec.eval.metrics import PSNR_CAP
from codec.eval.mpq import Cifar10Classification, aggregate, get_task, run, write_outputs


class LosslessPNG(RDCodec):
    key, name, modality = "png", "PNG (lossless)", "image"

    def ladder(self):
        return [0]

    def encode(self, item, point):
        from PIL import Image

        b = io.BytesIO()
        Image.fromarray(item).save(b, format="PNG")
        return b.getvalue()

    def decode(self, data, item):
        from codec.media import decode_image_bytes

        return decode_image_bytes(data)


@pytest.fixture(scope="module")
def task():
    return Cifar10Classification()


def test_shipped_cnn_matches_manifest(task):
    import torch

    from codec.eval.mpq_models import cifar_preprocess, cifar_split, load_cifar

    x, y, classes = load_cifar()
    _, held = cifar_split(y)
    with torch.inference_mode():
        pred = task.model(cifar_preprocess(x[held])).argmax(1).numpy()
    acc = float((pred == y[held]).mean())
    assert acc == pytest.approx(task.entry["training"]["held_out_accuracy"], abs=2e-4)
    assert acc > 0.5 and len(classes) == 10


def test_lossless_codec_changes_nothing(task):
    recs = run([task], [LosslessPNG()], limit=30, progress=False)
    assert len(recs) == 30 and len({r["item"] for r in recs}) == 30
    assert all(r["agreement"] == 1.0 and r["score"] == r["clean_score"] for r in recs)
    (row,) = aggregate(recs)
    assert row["drop"] == 0.0 and row["agreement"] == 1.0 and row["bpp"] > 8
    assert row["psnr-rgb"] == PSNR_CAP


def test_jpeg_harms_the_classifier_more_at_low_quality(task, tmp_path):
    recs = run([task], [get_codec("jpeg")], points={"jpeg": [5, 95]}, limit=60, progress=False)
    rows = {r["point"]: r for r in aggregate(recs)}
    assert rows[95]["agreement"] >= 0.9
    assert rows[5]["agreement"] < rows[95]["agreement"]
    assert rows[5]["bpp"] < rows[95]["bpp"] and rows[5]["psnr-rgb"] < rows[95]["psnr-rgb"]
    res = write_outputs(tmp_path, recs)
    for f in ("mpq_items.csv", "mpq.csv", "mpq.json", "mpq_correlations.md", "mpq_cifar10.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert json.loads((tmp_path / "mpq.json").read_text())["rows"][0]["task"] == "cifar10"
    assert "cifar10" in res["correlations"]


def test_learned_codec_and_command_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "codec.eval.mpq", "--tasks", "cifar10", "--codecs", "jpeg,msh",
                        "--points", "jpeg=10,50;msh=1,4", "--limit", "12", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "mpq.json").read_text())["rows"]
    assert {(x["codec"], x["point"]) for x in rows} == {("jpeg", 10), ("jpeg", 50), ("msh", 1), ("msh", 4)}
    corr = json.loads((tmp_path / "mpq.json").read_text())["correlations"]["cifar10"]
    assert corr["points"] == 4 and -1 <= corr["psnr-rgb"] <= 1
    r = subprocess.run([sys.executable, "-m", "codec.eval.mpq", "--tasks", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown MPQ task" in r.stderr


def test_unknown_task_and_modality_mismatch(task):
    with pytest.raises(CodecError, match="unknown MPQ task"):
        get_task("imagenet")
    with pytest.raises(CodecError, match="no codec for task"):
        run([task], [get_codec("opus")], limit=1, progress=False)


def test_char_accuracy():
    from codec.eval.mpq import char_accuracy, edit_distance

    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    assert char_accuracy("The  quick", "The quick") == 1.0
    assert char_accuracy("1234！", "1234!") == 1.0  # NFKC: full-width punctuation counts as the ASCII one
    assert char_accuracy("Tha quick", "The quick") == pytest.approx(1 - 1 / 9)
    assert char_accuracy("completely different and longer", "abc") == 0.0


def test_ocr_task_reads_clean_text_and_suffers_from_heavy_jpeg():
    from codec.eval.mpq import TextLineOCR

    task = TextLineOCR()
    items = list(task.items(limit=8))
    assert {i.split("-")[-1] for i, _, _ in items} == {"10px", "12px", "16px", "24px"}
    recs = run([task], [LosslessPNG(), get_codec("jpeg")], points={"jpeg": [5, 90]}, limit=8, progress=False)
    rows = {(r["codec"], r["point"]): r for r in aggregate(recs)}
    assert rows[("png", 0)]["clean_score"] > 0.9, "the OCR model reads the clean lines"
    assert rows[("png", 0)]["agreement"] == 1.0 and rows[("png", 0)]["drop"] == 0.0
    assert rows[("jpeg", 5)]["score"] < rows[("jpeg", 90)]["score"]


def test_speech_recognition_task():
    from codec.eval.mpq import SpeechRecognition, word_accuracy

    assert word_accuracy("Printing in the only sense", "printing, in the only sense!") == 1.0
    assert word_accuracy("printing the only", "printing in the only") == 0.75
    task = SpeechRecognition()
    recs = run([task], [get_codec("opus"), get_codec("jpeg")], points={"opus": [6, 32]}, limit=2, progress=False)
    rows = {r["point"]: r for r in aggregate(recs)}
    assert set(rows) == {6, 32}, "image codecs are skipped for an audio task"
    assert rows[32]["clean_score"] > 0.5, "pocketsphinx recognises clean LJSpeech"
    assert rows[6]["score"] < rows[32]["score"] and rows[6]["kbps"] < rows[32]["kbps"]
