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
    from codec.config import data_path

    if str(path).startswith("data:"):
        return data_path(str(path)[5:])
    p = Path(path).expanduser()
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


class ImageFolderData(L.LightningDataModule):
    """Random crops + flips from ``train_dirs``; centre crops of (the first ``val_limit`` images of) ``val_dir``."""

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

    def train_dataloader(self):
        hp = self.hparams
        return DataLoader(self.train_set, batch_size=hp.batch_size, shuffle=True, drop_last=True,
                          num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(self.val_set, batch_size=hp.val_batch_size, shuffle=False, num_workers=hp.num_workers)


# ----------------------------------------------------------------------------------------------------------------
# audio
# ----------------------------------------------------------------------------------------------------------------
def list_audio(specs) -> list[Path]:
    """Audio files from a list of folders, files or glob patterns (``data:`` = under the shared data root)."""
    import glob

    from codec.config import data_path, data_root
    from codec.media import AUDIO_EXTENSIONS

    files: list[Path] = []
    for spec in specs:
        s = str(spec)
        if s.startswith("data:"):
            p = data_root() / s[5:] if any(ch in s for ch in "*?[") else data_path(s[5:])
        else:
            p = Path(s).expanduser()
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


class AudioFolderData(L.LightningDataModule):
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

    def train_dataloader(self):
        hp = self.hparams
        return DataLoader(self.train_set, batch_size=hp.batch_size, shuffle=False, drop_last=True,
                          num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(self.val_set, batch_size=hp.val_batch_size, shuffle=False, num_workers=hp.num_workers)
