"""Training through train/fit.py (LightningCLI): two steps, resume, DDP with two CPU processes, export, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIT = ROOT / "train" / "fit.py"
CONFIG = ROOT / "train" / "configs" / "msh-base.yaml"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from conftest import write_image_folders

    return write_image_folders(tmp_path_factory.mktemp("imgs"), {"train": 6, "val": 2}, (12, 10))


def _fit(folders, run: Path, *extra, steps=2, timeout=600):
    cmd = [sys.executable, str(FIT), "fit", "--config", str(CONFIG),
           f"--trainer.max_steps={steps}", f"--trainer.default_root_dir={run}",
           f"--trainer.logger.init_args.save_dir={run}", "--trainer.val_check_interval=2",
           "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
           "--trainer.callbacks.init_args.dirpath=" + str(run / "checkpoints"),
           "--trainer.callbacks.init_args.every_n_train_steps=1",
           "--model.codec.init_args.N=8", "--model.codec.init_args.M=12",
           f"--data.init_args.train_dirs=[{folders / 'train'}]", f"--data.init_args.val_dir={folders / 'val'}",
           "--data.init_args.crop_size=64", "--data.init_args.batch_size=2", "--data.init_args.val_crop_size=64",
           "--data.init_args.val_batch_size=2", "--data.init_args.repeats=1", *extra]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return r


def _ckpt(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_two_steps_resume_and_export(folders, tmp_path):
    run = tmp_path / "run"
    _fit(folders, run, steps=2)
    ck = _ckpt(run)
    assert ck["global_step"] == 2  # max_steps counts batches (the auxiliary optimiser's step is not counted)
    assert ck["epoch"] == 0  # 6 images in batches of 2: the first epoch has 3 batches
    first = {k: v.clone() for k, v in ck["state_dict"].items()}
    # resume from the checkpoint and train one more step: continues at step 2 with the saved optimiser state
    _fit(folders, run, f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}", steps=3)
    ck2 = _ckpt(run)
    assert ck2["global_step"] == 3
    assert any(not torch.equal(first[k], ck2["state_dict"][k]) for k in first if first[k].is_floating_point())
    assert ck2["codec_training"]["train_seconds"] >= ck["codec_training"]["train_seconds"]
    # metrics were logged, validation included
    metrics = list((run / "logs").rglob("metrics.csv"))
    assert metrics and "val/psnr" in metrics[0].read_text()

    # export -> shipped checkpoint (fp16 weights, frozen tables, sha256 in the manifest), then code with it
    from codec.checkpoints import load_checkpoint_file, load_manifest, sha256_file
    from codec.cli import main

    out = tmp_path / "ckpts"
    out.mkdir()
    last = str(run / "checkpoints" / "last.ckpt")
    assert main(["export", last, "--family", "tiny", "--quality", "1"]) == 2  # says where to write first
    assert not out.exists() or not any(out.iterdir())
    assert main(["export", last, "-o", str(out / "tiny-q1.pt"), "--record", "[1]"]) == 2  # not a JSON object
    assert not out.exists() or not any(out.iterdir())
    assert main(["export", last, "-o", str(out / "tiny-q1.pt"), "--add-to-manifest", "--family", "tiny",
                 "--quality", "1", "--record", '{"note": "stage 2 of 2", "steps_total": 7}']) == 0
    manifest = load_manifest(out)
    (entry,) = manifest["models"]
    assert entry["training"]["note"] == "stage 2 of 2" and entry["training"]["steps_total"] == 7
    assert entry["sha256"] == sha256_file(out / "tiny-q1.pt")
    assert entry["training"]["steps"] == 3 and entry["training"]["crop"] == 64 and entry["training"]["batch"] == 2
    assert entry["training"]["lambda"] == pytest.approx(0.013) and entry["training"]["hardware"]
    shipped = torch.load(out / "tiny-q1.pt", weights_only=True)
    assert "optimizer_states" not in shipped and set(shipped["tables"]) == {"bottleneck", "gaussian"}
    # parameters are float16; float buffers stay float32 (1e-9 likelihood bound would underflow to 0 in float16)
    sd = shipped["state_dict"]
    assert sd["g_a.0.weight"].dtype == torch.float16
    bound = sd["gaussian_conditional.likelihood_lower_bound.bound"]
    assert bound.dtype == torch.float32 and float(bound) == pytest.approx(1e-9)
    assert sd["gaussian_conditional.scale_table"].dtype == torch.float32
    model = load_checkpoint_file(out / "tiny-q1.pt")
    from codec.api import decode, encode_image

    img = np.asarray(Image.open(folders / "val" / "0.png").convert("RGB"))
    assert decode(encode_image(img, model), model).shape == img.shape
    # exporting again does not overwrite without --force; a training checkpoint is not a shipped one
    assert main(["export", last, "-o", str(out / "tiny-q1.pt")]) == 2
    assert load_manifest(out)["models"] == manifest["models"]
    from codec.errors import CheckpointError

    with pytest.raises(CheckpointError, match="codec export"):
        load_checkpoint_file(run / "checkpoints" / "last.ckpt")


def test_ddp_two_cpu_processes(folders, tmp_path):
    run = tmp_path / "ddp"
    _fit(folders, run, "--trainer.strategy=ddp", "--trainer.devices=2", steps=2)
    ck = _ckpt(run)
    assert ck["global_step"] == 2
    assert ck["codec_training"]["world_size"] == 2  # the trainer's own world size, written by the training clock
    # each rank sees half of the 6 training images per epoch (DistributedSampler): one batch of 2 (the last, partial
    # batch is dropped), so two steps span two epochs where one process needs three steps for one
    assert ck["epoch"] >= 1


def test_data_module_crops_and_errors(folders, tmp_path):
    from codec.errors import MediaError
    from codec.train.data import ImageFolderData

    dm = ImageFolderData([str(folders / "train")], str(folders / "val"), crop_size=40, batch_size=3,
                         val_crop_size=48, val_batch_size=2)
    dm.setup("fit")
    (x,) = [next(iter(dm.train_dataloader()))]
    assert x.shape == (3, 3, 40, 40) and 0 <= float(x.min()) and float(x.max()) <= 1
    v = next(iter(dm.val_dataloader()))
    assert v.shape == (2, 3, 48, 48)
    # smaller images than the crop are padded, never refused
    big = ImageFolderData([str(folders / "train")], str(folders / "val"), crop_size=200, batch_size=1)
    big.setup("fit")
    assert next(iter(big.train_dataloader())).shape == (1, 3, 200, 200)
    with pytest.raises(MediaError, match="not found"):
        ImageFolderData([str(tmp_path / "nope")], str(folders / "val")).setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="no images"):
        ImageFolderData([str(tmp_path / "empty")], str(folders / "val")).setup("fit")


def test_resume_accepts_filled_cdf_caches():
    """A training checkpoint saved after CompressAI's CDF caches were filled (tables built during training) resumes
    into a fresh task: the task lets the codec resize them first."""
    from codec.codecs.image import MeanScaleHyperprior
    from codec.train.task import CodecTask

    t = CodecTask(MeanScaleHyperprior(N=8, M=12))
    t.codec.freeze_tables()
    ck = {"state_dict": t.state_dict()}
    assert ck["state_dict"]["codec.gaussian_conditional._quantized_cdf"].numel() > 0
    fresh = CodecTask(MeanScaleHyperprior(N=8, M=12))
    with pytest.raises(RuntimeError):
        fresh.load_state_dict(ck["state_dict"])  # what Lightning would hit without the hook
    fresh.on_load_checkpoint(ck)
    fresh.load_state_dict(ck["state_dict"])
    assert torch.equal(fresh.codec.gaussian_conditional._quantized_cdf, t.codec.gaussian_conditional._quantized_cdf)


def test_channels_last_bf16_training_exports_plain_weights(tmp_path):
    """CodecTask(channels_last=True) under bf16-mixed: weights and image batches in NHWC order while training, the
    precision recorded in the checkpoint and the export, and the exported weights in the usual order, training's
    values."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from codec.codecs.image import QResVAE
    from codec.export import export
    from codec.train.task import CodecTask

    torch.manual_seed(0)
    task = CodecTask(QResVAE(widths=[8] * 5, blocks=[1] * 5, zdims=[2] * 5, qualities=4), channels_last=True)
    before = {k: v.clone() for k, v in task.codec.state_dict().items()}
    seen = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(batch.is_contiguous(memory_format=torch.channels_last))

    trainer = L.Trainer(max_steps=2, precision="bf16-mixed", accelerator="cpu", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[Spy(), ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)])
    trainer.fit(task, torch.utils.data.DataLoader(torch.rand(4, 3, 64, 64), batch_size=2))
    assert seen == [True, True]
    w = task.codec.stem.weight
    assert w.dim() == 4 and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    sd = task.codec.state_dict()
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in sd.items() if v.is_floating_point())
    ck = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=False)
    assert ck["codec_training"]["precision"] == "bf16-mixed" and ck["codec_training"]["channels_last"] is True
    entry = export(tmp_path / "ck" / "last.ckpt", tmp_path / "m.pt")
    assert entry["training"]["precision"] == "bf16-mixed" and entry["training"]["channels_last"] is True
    shipped = torch.load(tmp_path / "m.pt", weights_only=False)["state_dict"]
    assert shipped["stem.weight"].is_contiguous()
    assert torch.allclose(shipped["stem.weight"].float(), w.detach(), atol=1e-3)
