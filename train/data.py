"""Data modules for training from folders (no download step).

:class:`ImageFolderData` trains on random crops (with random horizontal and vertical flips) of the images in one or
more folders and validates on centre crops of a held-out folder. Folder paths may start with ``data:``, which
means "under the shared data root" (``CODEC_DATA``, default ``../shared/data``), so configs do not hard-code a
machine's layout: ``data:images/bsds500/train``.

Images are read with :func:`codec.media.load_image` (the same RGB conversion rules as ``codec encode``) and, by
default, kept decoded in memory (BSDS500 train+val is about 140 MB), so a CPU run does not spend its time in the
JPEG decoder. Images smaller than the crop are padded by reflection.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from codec.errors import MediaError
from codec.media import IMAGE_EXTENSIONS, load_image


def resolve_folder(path: str) -> Path:
    from codec.config import spec_path

    p = spec_path(path)
    if not p.is_dir():
        raise MediaError(f"training data folder not found: {p}")
    return p


def list_images(folders) -> list[Path]:
    files: list[Path] = []
    for f in folders:
        d = resolve_folder(f)
        files += sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise MediaError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {list(folders)}")
    return files


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)


def _pad_to(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    if h >= size and w >= size:
        return a
    return np.pad(a, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")


class SetsData(L.LightningDataModule):
    """A data module whose ``setup`` builds ``train_set`` and ``val_set``; the loaders are the same for every
    modality (``batch_size``, ``val_batch_size``, ``num_workers`` from the hyper-parameters)."""

    shuffle_train = False

    def train_dataloader(self):
        hp = self.hparams
        return DataLoader(self.train_set, batch_size=hp.batch_size, shuffle=self.shuffle_train, drop_last=True,
                          num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(self.val_set, batch_size=hp.val_batch_size, shuffle=False, num_workers=hp.num_workers)


class ImageCrops(Dataset):
    """Random (train) or centre (val) square crops of the images in ``files``."""

    def __init__(self, files, crop_size: int, train: bool, cache: bool = True, repeats: int = 1):
        self.files = list(files)
        self.crop = int(crop_size)
        self.train = train
        self.repeats = max(1, int(repeats))
        self._cache: dict[int, np.ndarray] = {}
        self.cache = cache

    def __len__(self) -> int:
        return len(self.files) * self.repeats

    def _image(self, i: int) -> np.ndarray:
        if i in self._cache:
            return self._cache[i]
        a = _pad_to(load_image(self.files[i]), self.crop)
        if self.cache:
            self._cache[i] = a
        return a

    def __getitem__(self, idx: int) -> torch.Tensor:
        a = self._image(idx % len(self.files))
        h, w = a.shape[:2]
        c = self.crop
        if self.train:
            y = int(torch.randint(0, h - c + 1, ()).item())
            x = int(torch.randint(0, w - c + 1, ()).item())
            a = a[y:y + c, x:x + c]
            if torch.rand(()) < 0.5:
                a = a[:, ::-1]
            if torch.rand(()) < 0.5:
                a = a[::-1]
        else:
            y, x = (h - c) // 2, (w - c) // 2
            a = a[y:y + c, x:x + c]
        return _to_tensor(a)


class ImageFolderData(SetsData):
    """Random crops + flips from ``train_dirs``; centre crops of (the first ``val_limit`` images of) ``val_dir``."""

    shuffle_train = True  # the crop dataset is indexed in file order; the audio and video sets draw at random

    def __init__(self, train_dirs: list[str], val_dir: str, crop_size: int = 256, batch_size: int = 8,
                 val_crop_size: int = 256, val_batch_size: int = 8, val_limit: int | None = 24,
                 num_workers: int = 0, cache: bool = True, repeats: int = 1):
        super().__init__()
        self.save_hyperparameters()
        if int(crop_size) < 1 or int(batch_size) < 1:
            raise MediaError(f"crop_size and batch_size must be positive (got {crop_size}, {batch_size})")

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        self.train_set = ImageCrops(list_images(hp.train_dirs), hp.crop_size, train=True, cache=hp.cache,
                                    repeats=hp.repeats)
        val_files = list_images([hp.val_dir])
        if hp.val_limit:
            val_files = val_files[: int(hp.val_limit)]
        self.val_set = ImageCrops(val_files, hp.val_crop_size, train=False, cache=hp.cache)


# ----------------------------------------------------------------------------------------------------------------
# audio
# ----------------------------------------------------------------------------------------------------------------
def list_audio(specs) -> list[Path]:
    """Audio files from a list of folders, files or glob patterns (``data:`` = under the shared data root)."""
    import glob

    from codec.config import spec_path
    from codec.media import AUDIO_EXTENSIONS

    files: list[Path] = []
    for spec in specs:
        s = str(spec)
        p = spec_path(s)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            hits = sorted(Path(h) for h in glob.glob(str(p)))
            if not hits:
                raise MediaError(f"no audio matches {spec!r} ({p})")
            files += [h for h in hits if h.suffix.lower() in AUDIO_EXTENSIONS]
    if not files:
        raise MediaError(f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in {list(specs)}")
    return files


def load_audio_as(path, sample_rate: int, channels: int, loudness: float | None = -24.0) -> torch.Tensor:
    """(channels, samples) float32: resampled with torchaudio, channels mixed down (mean) or up (repeated), and
    normalised to ``loudness`` LUFS (ITU-R BS.1770, torchaudio) with peaks kept within [-1, 1]."""
    import torchaudio.functional as AF

    from codec.media import load_audio

    a, sr = load_audio(path)
    x = torch.from_numpy(np.ascontiguousarray(a.T))
    if x.shape[0] != channels:
        x = x.mean(0, keepdim=True).repeat(channels, 1) if channels != 1 else x.mean(0, keepdim=True)
    if sr != sample_rate:
        x = AF.resample(x, sr, sample_rate)
    if loudness is not None and x.shape[1] >= sample_rate // 2:
        lufs = float(AF.loudness(x, sample_rate))
        if math.isfinite(lufs):
            x = x * 10 ** ((loudness - lufs) / 20)
    peak = float(x.abs().max()) if x.numel() else 0.0
    if peak > 1.0:
        x = x / peak
    return x.float().contiguous()


class AudioExcerpts(Dataset):
    """Random (train) or evenly spaced (val) excerpts of ``excerpt`` samples from decoded audio tensors."""

    def __init__(self, audio: list[torch.Tensor], excerpt: int, train: bool, length: int):
        self.audio, self.excerpt, self.train, self.length = audio, int(excerpt), train, int(length)
        self.weights = torch.tensor([max(1, a.shape[1] - self.excerpt) for a in audio], dtype=torch.float64)

    def __len__(self) -> int:
        return self.length

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, self.excerpt - x.shape[1])) if x.shape[1] < self.excerpt else x

    def __getitem__(self, idx: int) -> torch.Tensor:
        if self.train:
            i = int(torch.multinomial(self.weights, 1).item())
            a = self.audio[i]
            s = int(torch.randint(0, max(1, a.shape[1] - self.excerpt + 1), ()).item())
        else:  # deterministic: spread the excerpts over the files
            i = idx % len(self.audio)
            a = self.audio[i]
            k = idx // len(self.audio)
            n = -(-self.length // len(self.audio))
            s = int((a.shape[1] - self.excerpt) * (k + 0.5) / n) if a.shape[1] > self.excerpt else 0
        return self._pad(a[:, s:s + self.excerpt])


class AudioFolderData(SetsData):
    """Random excerpts of the audio in ``train`` (folders, files or globs), resampled to ``sample_rate`` with
    torchaudio, mixed to ``channels`` and loudness-normalised; fixed excerpts of the held-out ``val`` files.
    ``steps_per_epoch`` batches make an epoch (excerpts are drawn in proportion to file length)."""

    def __init__(self, train: list[str], val: list[str], sample_rate: int = 48000, channels: int = 2,
                 excerpt: int = 16384, batch_size: int = 8, val_excerpt: int = 65536, val_count: int = 8,
                 val_batch_size: int = 4, loudness: float | None = -24.0, steps_per_epoch: int = 500,
                 num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        if int(excerpt) < 1 or int(batch_size) < 1 or int(sample_rate) < 1 or int(channels) < 1:
            raise MediaError("excerpt, batch_size, sample_rate and channels must be positive")

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        train_files, val_files = list_audio(hp.train), list_audio(hp.val)
        overlap = {f.resolve() for f in train_files} & {f.resolve() for f in val_files}
        if overlap:
            raise MediaError(f"held-out audio is also in the training set: {sorted(map(str, overlap))[:3]}")
        load = lambda f: load_audio_as(f, hp.sample_rate, hp.channels, hp.loudness)  # noqa: E731
        self.train_set = AudioExcerpts([load(f) for f in train_files], hp.excerpt, True,
                                       hp.steps_per_epoch * hp.batch_size)
        self.val_set = AudioExcerpts([load(f) for f in val_files], hp.val_excerpt, False, hp.val_count)



# ----------------------------------------------------------------------------------------------------------------
# video
# ----------------------------------------------------------------------------------------------------------------
def list_sequences(specs) -> list[tuple[str, list[Path]]]:
    """Clips from a list of specs (``data:`` = under the shared data root): a video file (one clip), or a glob of
    image files (one clip of frames, in name order, e.g. ``data:video/usc_sipi_sequences/6.1.*.png``). Returns
    ``(name, [files])`` per clip."""
    import glob

    from codec.config import spec_path
    from codec.media import VIDEO_EXTENSIONS

    out = []
    for spec in specs:
        s = str(spec)
        p = spec_path(s)
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
            out.append((p.name, [p]))
            continue
        hits = sorted(Path(h) for h in glob.glob(str(p)) if Path(h).suffix.lower() in IMAGE_EXTENSIONS)
        if not hits:
            raise MediaError(f"no video file or image frames match {spec!r} ({p})")
        out.append((s.rsplit("/", 1)[-1], hits))
    return out


def load_clip_rgb(files: list[Path], max_frames: int | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of a clip, converted from 4:2:0 exactly as the video codec converts its input
    (:func:`codec.codecs.video.models.yuv420_to_rgb`), so training sees what coding sees. Image-frame clips go
    through 4:2:0 too."""
    from codec.codecs.video.models import rgb_to_yuv420, yuv420_to_rgb
    from codec.media import open_video

    def to8(x: torch.Tensor) -> np.ndarray:
        return (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()

    frames = []
    if len(files) == 1 and files[0].suffix.lower() not in IMAGE_EXTENSIONS:
        _, it = open_video(files[0], max_frames=max_frames)
        for y, u, v in it:
            frames.append(to8(yuv420_to_rgb(y, u, v)))
    else:
        for f in files[:max_frames]:
            x = _to_tensor(load_image(f))[None]
            frames.append(to8(yuv420_to_rgb(*rgb_to_yuv420(x))))
    return np.stack(frames)


class FrameGroups(Dataset):
    """Groups of ``frames`` consecutive frames, cropped at one random (train) or central (val) position.

    Train: clip drawn in proportion to its frame count, random start, random crop, random horizontal flip and time
    reversal. With ``stills`` (decoded still images), a ``still_fraction`` of the groups are synthetic camera pans
    instead: one image cropped at positions moving by a random constant integer velocity (up to ``max_shift``
    pixels per frame in each direction). ``noise``: independent Gaussian noise of a random standard deviation in
    [0, noise] (8-bit units) added to every frame of a training group, so the prior does not learn that static
    content repeats exactly (compressed sources do, camera video does not). Val: ``length`` groups spread evenly
    over the clips' held-out frames, no augmentation."""

    def __init__(self, clips: list[np.ndarray], frames: int, crop: int, train: bool, length: int,
                 stills: list[np.ndarray] | None = None, still_fraction: float = 0.0, max_shift: int = 0,
                 noise: float = 0.0):
        self.clips = [c for c in clips if c.shape[0] >= frames]
        if not self.clips:
            raise MediaError(f"no clip has {frames} frames")
        self.frames, self.crop, self.train, self.length = int(frames), int(crop), train, int(length)
        self.weights = torch.tensor([c.shape[0] - frames + 1 for c in self.clips], dtype=torch.float64)
        self.stills = stills or []
        self.still_fraction = float(still_fraction) if self.stills else 0.0
        self.max_shift, self.noise = int(max_shift), float(noise)

    def __len__(self) -> int:
        return self.length

    def _pan(self) -> np.ndarray:
        a = self.stills[int(torch.randint(0, len(self.stills), ()).item())]
        s, n, m = self.crop, self.frames, self.max_shift
        h, w = a.shape[:2]
        vy, vx = (int(v) for v in torch.randint(-m, m + 1, (2,)))
        span_y, span_x = abs(vy) * (n - 1), abs(vx) * (n - 1)
        if h < s + span_y or w < s + span_x:
            a = np.pad(a, ((0, max(0, s + span_y - h)), (0, max(0, s + span_x - w)), (0, 0)), mode="reflect")
            h, w = a.shape[:2]
        y0 = int(torch.randint(0, h - s - span_y + 1, ()).item()) + (span_y if vy < 0 else 0)
        x0 = int(torch.randint(0, w - s - span_x + 1, ()).item()) + (span_x if vx < 0 else 0)
        return np.stack([a[y0 + t * vy: y0 + t * vy + s, x0 + t * vx: x0 + t * vx + s] for t in range(n)])

    def __getitem__(self, idx: int) -> torch.Tensor:
        s = self.crop
        if self.train and self.still_fraction and torch.rand(()) < self.still_fraction:
            g = self._pan()
        else:
            if self.train:
                i = int(torch.multinomial(self.weights, 1).item())
                c = self.clips[i]
                t = int(torch.randint(0, c.shape[0] - self.frames + 1, ()).item())
            else:
                i = idx % len(self.clips)
                c = self.clips[i]
                k, n = idx // len(self.clips), -(-self.length // len(self.clips))
                t = int((c.shape[0] - self.frames) * (k + 0.5) / n)
            g = c[t: t + self.frames]
            h, w = g.shape[1:3]
            if h < s or w < s:
                g = np.pad(g, ((0, 0), (0, max(0, s - h)), (0, max(0, s - w)), (0, 0)), mode="edge")
                h, w = g.shape[1:3]
            if self.train:
                y0 = int(torch.randint(0, h - s + 1, ()).item())
                x0 = int(torch.randint(0, w - s + 1, ()).item())
            else:
                y0, x0 = (h - s) // 2, (w - s) // 2
            g = g[:, y0:y0 + s, x0:x0 + s]
        if self.train and torch.rand(()) < 0.5:
            g = g[:, :, ::-1]
        if self.train and torch.rand(()) < 0.5:
            g = g[::-1]
        x = torch.from_numpy(np.ascontiguousarray(g)).permute(0, 3, 1, 2).float().div_(255.0)
        if self.train and self.noise > 0:
            sigma = float(torch.rand(())) * self.noise / 255.0
            x = (x + torch.randn_like(x) * sigma).clamp_(0, 1)
        return x


class VideoClipsData(SetsData):
    """Groups of consecutive frames from video clips (decoded through the imageio-ffmpeg binary, or image-frame
    sequences), for the video codec's temporal prior. ``train`` and ``val`` are lists of clip specs
    (:func:`list_sequences`); with no ``val``, the last ``val_fraction`` of each training clip's frames is held
    out for validation (never trained on). ``stills``: image folders for synthetic camera pans (a
    ``still_fraction`` of the training groups, see :class:`FrameGroups`); ``noise``: per-frame noise augmentation."""

    def __init__(self, train: list[str], val: list[str] | None = None, frames: int = 2, crop_size: int = 256,
                 batch_size: int = 8, max_frames: int | None = 400, val_fraction: float = 0.1, val_count: int = 16,
                 val_batch_size: int = 4, steps_per_epoch: int = 500, num_workers: int = 0,
                 stills: list[str] | None = None, still_fraction: float = 0.5, max_shift: int = 16,
                 noise: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        if int(frames) < 2 or int(crop_size) < 1 or int(batch_size) < 1:
            raise MediaError("frames must be >= 2, crop_size and batch_size positive")

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        train = [load_clip_rgb(f, hp.max_frames) for _, f in list_sequences(hp.train)]
        if hp.val:
            tr_files = {p.resolve() for _, fs in list_sequences(hp.train) for p in fs}
            val_specs = list_sequences(hp.val)
            if tr_files & {p.resolve() for _, fs in val_specs for p in fs}:
                raise MediaError("a validation clip is also in the training set")
            val = [load_clip_rgb(f, hp.max_frames) for _, f in val_specs]
        else:
            cut = [max(hp.frames, int(round(c.shape[0] * hp.val_fraction))) for c in train]
            val = [c[-k:] for c, k in zip(train, cut)]
            train = [c[:-k] for c, k in zip(train, cut)]
        stills = None
        if hp.stills:
            from codec.codecs.video.models import rgb_to_yuv420, yuv420_to_rgb

            def via420(f):  # what coding sees: the 4:2:0 round trip of the picture
                x = yuv420_to_rgb(*rgb_to_yuv420(_to_tensor(load_image(f))[None]))
                return (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()

            stills = [via420(f) for f in list_images(hp.stills)]
        self.train_set = FrameGroups(train, hp.frames, hp.crop_size, True, hp.steps_per_epoch * hp.batch_size,
                                     stills, hp.still_fraction, hp.max_shift, hp.noise)
        self.val_set = FrameGroups(val, hp.frames, hp.crop_size, False, hp.val_count)

