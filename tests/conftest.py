import os

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run the long forms (training runs, full-dataset evaluation)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("CODEC_RUNSLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long form: run with --runslow (make test-long)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def write_image_folders(root, counts: dict, blocks: tuple[int, int]):
    """Folders ``root/<split>`` of blocky random RGB PNGs (``blocks`` cells of 8x8 pixels) for training tests;
    ``counts``: images per split. Returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in counts.items():
        (root / split).mkdir()
        for i in range(n):
            a = np.kron(rng.integers(0, 256, (*blocks, 3)), np.ones((8, 8, 1))).astype(np.uint8)
            Image.fromarray(a).save(root / split / f"{i}.png")
    return root


def ready_rvqgan(model, seconds: float = 1.0):
    """Fit an RVQGAN's token prior on noise and freeze its tables (what export does on training audio)."""
    import torch

    g = torch.Generator().manual_seed(1)
    model.fit_prior([torch.randn(model.channels, int(model.sample_rate * seconds), generator=g) * 0.3])
    model.freeze_tables()
    return model
