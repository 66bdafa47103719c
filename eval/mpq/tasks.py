"""The MPQ tasks: a frozen perception model per task, its items, and its per-item metric (see the package
docstring of :mod:`codec.eval.mpq` for what each task measures)."""

from __future__ import annotations


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


def rapid_ocr():
    """rapidocr-onnxruntime's reader (models inside its wheel), one thread, as both OCR tasks use it."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise CodecError("the OCR task needs the mpq extra: pip install -e '.[mpq]' (rapidocr-onnxruntime)") from None
    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)


class TextLineOCR(Task):
    """Character accuracy of rapidocr-onnxruntime (recognition model only, one line per image) on text lines from
    the LJSpeech transcripts in ../shared/data (real English sentences, wrapped into lines of at most 40
    characters: 22 lines from its 8 transcripts), rendered black on white with Pillow's built-in scalable font at
    10, 12, 16 and 24 px. Items interleave sizes, so a small ``limit`` covers all of them."""

    name = "ocr-lines"
    metric = "character accuracy"
    SIZES = (10, 12, 16, 24)

    def __init__(self):
        self.ocr = rapid_ocr()

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
        self.ocr = rapid_ocr()

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
