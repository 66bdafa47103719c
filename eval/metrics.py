"""Quality metrics.

Images (CompressAI's conventions): PSNR-RGB on 8-bit-rounded images (MSE over all pixels and channels, peak 255);
MS-SSIM on RGB in [0, 1] with pytorch-msssim (data_range 1, its default 5 scales and weights); reported in dB as
``-10 log10(1 - MS-SSIM)`` in plots. Images smaller than 161 px on a side (MS-SSIM's 4 downsamplings of an 11-tap
window) get ``nan`` MS-SSIM rather than a wrong number.

Audio: SI-SDR (scale-invariant SDR, Le Roux et al. 2019, zero-mean, dB); multi-scale mel distance as DAC defines
it for evaluation and training (``MelSpectrogramLoss``: window lengths 32..2048, hop = window / 4, Hann window,
mel bands 5..320, Slaney mel scale and norm, L1 between ``log10(max(mel, 1e-5))``, summed over the 7 scales,
magnitude term off); PESQ (wide band at 16 kHz) and STOI when the optional ``speech`` extra is installed.

Video: PSNR of Y, U and V planes per frame and PSNR-YUV = (6 PSNR-Y + PSNR-U + PSNR-V) / 8, per frame and mean.
"""

from __future__ import annotations

import math

import numpy as np
import torch

PSNR_CAP = 100.0  # identical images: report 100 dB, not inf (CompressAI does the same kind of capping in plots)


# --------------------------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(peak * peak / mse))


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over the RGB channels of two uint8 images (8-bit-rounded, as CompressAI)."""
    return psnr(np.asarray(a, dtype=np.uint8), np.asarray(b, dtype=np.uint8))


def ms_ssim_rgb(a: np.ndarray, b: np.ndarray, small_images: bool = False) -> float:
    """MS-SSIM (5 scales, 11-px Gaussian window, pytorch-msssim) of two RGB uint8 images. The five scales need a
    161-px short side: smaller images give NaN, or with ``small_images`` are first upsampled (bilinear, both alike)
    to a 161-px short side (the MPQ suite's thumbnails and text lines; the convention of :mod:`codec.eval.lpips`)."""
    import torch.nn.functional as F
    from pytorch_msssim import ms_ssim

    side = min(a.shape[0], a.shape[1])
    if side < 161 and not small_images:
        return float("nan")
    ta = torch.tensor(np.asarray(a)).permute(2, 0, 1)[None].float() / 255.0
    tb = torch.tensor(np.asarray(b)).permute(2, 0, 1)[None].float() / 255.0
    if side < 161:
        size = [int(np.ceil(s * 161 / side)) for s in ta.shape[-2:]]
        ta = F.interpolate(ta, size=size, mode="bilinear", align_corners=False)
        tb = F.interpolate(tb, size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        return float(ms_ssim(ta, tb, data_range=1.0))


def image_quality(reference: np.ndarray, decoded: np.ndarray, msssim: bool = True, small_images: bool = False,
                  lpips: bool = False, notes: bool = False) -> dict:
    """What the evaluation reports for a decoded image: PSNR-RGB and MS-SSIM-RGB (see :func:`ms_ssim_rgb` for
    ``small_images``), and LPIPS when asked and its weights are installed (:mod:`codec.eval.lpips`). With
    ``notes``, a metric the image is too small for is None and ``out["notes"]`` says why (instead of NaN)."""
    out = {"psnr-rgb": psnr_rgb(reference, decoded),
           "ms-ssim-rgb": ms_ssim_rgb(reference, decoded, small_images) if msssim else float("nan")}
    if notes:
        out["notes"] = []
        if msssim and out["ms-ssim-rgb"] != out["ms-ssim-rgb"]:
            out["ms-ssim-rgb"] = None
            out["notes"].append("MS-SSIM needs a 161-px short side")
    if lpips:
        from codec.errors import CodecError
        from codec.eval.lpips import lpips_rgb

        try:
            out["lpips"] = lpips_rgb(reference, decoded)
        except CodecError:  # no LPIPS weights installed: the other metrics still count
            pass
    return out


def ms_ssim_db(v: float) -> float:
    return -10 * math.log10(max(1e-10, 1 - v)) if v == v else float("nan")


# --------------------------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------------------------
def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-8) -> float:
    """Scale-invariant SDR in dB, over all channels together (zero-mean signals)."""
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    e = np.asarray(estimate, dtype=np.float64).reshape(-1)
    n = min(r.size, e.size)
    r, e = r[:n] - r[:n].mean(), e[:n] - e[:n].mean()
    alpha = np.dot(e, r) / (np.dot(r, r) + eps)
    target = alpha * r
    noise = e - target
    return float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


_MEL_CACHE: dict = {}
DAC_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MELS = (5, 10, 20, 40, 80, 160, 320)


def _mel(sr: int, win: int, n_mels: int):
    key = (sr, win, n_mels)
    if key not in _MEL_CACHE:
        import torchaudio

        _MEL_CACHE[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=sr, n_fft=win, win_length=win, hop_length=win // 4, n_mels=n_mels, power=1.0,
            window_fn=torch.hann_window, center=True, norm="slaney", mel_scale="slaney", f_min=0.0, f_max=None)
    return _MEL_CACHE[key]


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """DAC's multi-scale mel distance (lower is better); channels are treated as a batch and averaged."""
    r = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    e = torch.as_tensor(np.asarray(estimate, dtype=np.float32))
    if r.dim() == 1:
        r, e = r[:, None], e[:, None]
    n = min(r.shape[0], e.shape[0])
    r, e = r[:n].T.contiguous(), e[:n].T.contiguous()  # (channels, samples)
    total = 0.0
    with torch.no_grad():
        for win, nm in zip(DAC_WINDOWS, DAC_MELS):
            m = _mel(sample_rate, win, nm)
            a = torch.log10(m(r).clamp(min=1e-5))
            b = torch.log10(m(e).clamp(min=1e-5))
            total += float((a - b).abs().mean())
    return total


#: the fewest samples the multi-scale mel distance is defined on (its largest window, centred, needs more than
#: half a window of signal)
MEL_MIN_SAMPLES = max(DAC_WINDOWS) // 2 + 1


def audio_quality(reference: np.ndarray, decoded: np.ndarray, sample_rate: int, notes: bool = False) -> dict:
    """What the evaluation reports for decoded audio: SI-SDR and the multi-scale mel distance. With ``notes``, a
    metric that is undefined for the input is None and ``out["notes"]`` says why: SI-SDR for a silent reference
    (it has no scale to fit), the mel distance for clips shorter than :data:`MEL_MIN_SAMPLES`."""
    ref = np.asarray(reference, dtype=np.float64)
    if not notes:
        return {"si-sdr": si_sdr(reference, decoded), "mel-distance": mel_distance(reference, decoded, sample_rate)}
    out = {"si-sdr": None, "mel-distance": None, "notes": []}
    if float(np.abs(ref - ref.mean()).max(initial=0.0)) < 1e-6:
        out["notes"].append("SI-SDR is undefined for a silent reference")
    else:
        out["si-sdr"] = si_sdr(reference, decoded)
    if ref.shape[0] < MEL_MIN_SAMPLES:
        out["notes"].append(f"the mel distance needs at least {MEL_MIN_SAMPLES} samples")
    else:
        out["mel-distance"] = mel_distance(reference, decoded, sample_rate)
    return out


def speech_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict:
    """PESQ (wide band, at 16 kHz) and STOI when the optional packages are installed; {} otherwise."""
    out = {}
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    ref = ref.mean(axis=1) if ref.ndim == 2 else ref
    est = est.mean(axis=1) if est.ndim == 2 else est
    n = min(ref.size, est.size)
    ref, est = ref[:n], est[:n]
    try:
        from pystoi import stoi

        out["stoi"] = float(stoi(ref, est, sample_rate, extended=False))
    except ImportError:
        pass
    try:
        from pesq import pesq
        import torchaudio.functional as AF

        if sample_rate != 16000:
            r16 = AF.resample(torch.from_numpy(ref).float(), sample_rate, 16000).numpy()
            e16 = AF.resample(torch.from_numpy(est).float(), sample_rate, 16000).numpy()
        else:
            r16, e16 = ref, est
        out["pesq"] = float(pesq(16000, r16, e16, "wb"))
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - pesq raises on silent/too-short input; the metric is then absent
        pass
    return out


# --------------------------------------------------------------------------------------------------------------
# video
# --------------------------------------------------------------------------------------------------------------
def psnr_yuv420_frame(ref, dec) -> tuple[float, float, float, float]:
    """(PSNR-Y, PSNR-U, PSNR-V, PSNR-YUV 6:1:1) of one 4:2:0 frame, each given as planes (Y, U, V)."""
    y, u, v = (psnr(a, b) for a, b in zip(ref, dec))
    return y, u, v, (6 * y + u + v) / 8


def psnr_yuv420(ref, dec) -> dict:
    """Per-frame PSNR-Y/U/V and PSNR-YUV (6:1:1) of two :class:`codec.media.Video`, and their means."""
    if ref.frames != dec.frames or ref.y.shape != dec.y.shape:
        raise ValueError(f"frame count or size differs: {ref.y.shape} vs {dec.y.shape}")
    n = ref.frames
    if n == 0:
        raise ValueError("no frames to compare")
    frames = [psnr_yuv420_frame((ref.y[t], ref.u[t], ref.v[t]), (dec.y[t], dec.u[t], dec.v[t])) for t in range(n)]
    ys, us, vs, yuv = (list(c) for c in zip(*frames))
    return {"psnr-y": float(np.mean(ys)), "psnr-u": float(np.mean(us)), "psnr-v": float(np.mean(vs)),
            "psnr-yuv": float(np.mean(yuv)), "per_frame_psnr_yuv": [round(x, 4) for x in yuv]}
