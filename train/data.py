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

from pathlib import Path

import lightning as L
import numpy as np
import torch
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
