"""The training side of a codec: a LightningModule that holds a :class:`~codec.codecs.base.CodecModule` and calls its
training hooks, plus the training clock (a Callback). Coding never imports this module (nor Lightning).

    model:                       # train/configs/*.yaml (LightningCLI; train/fit.py)
      codec:
        class_path: codec.codecs.image.MeanScaleHyperprior
        init_args: {N: 64, M: 96, lmbda: 0.0130}

The codec's ``training_step(task, batch, batch_idx)`` uses ``task`` for what Lightning provides (``optimizers()``,
``manual_backward``, ``clip_gradients``, ``lr_schedulers()``, ``log_dict``, ``trainer``); modules only training
needs (``codec.training_parts()``: discriminators, loss networks) live in ``task.parts``. Checkpoints hold the codec's
weights under ``codec.``, its class and constructor arguments in ``hyper_parameters["codec"]`` (``class_path``, ``init_args``), and the clock under
``codec_training``; ``codec export`` turns one into a shipped checkpoint.
"""

from __future__ import annotations

import time

import lightning as L
import torch
import torch.nn as nn
from lightning.fabric.utilities.apply_func import apply_to_collection

from codec.codecs.base import CodecModule, hardware_description


class TrainingClock(L.Callback):
    """Wall time spent in training batches (not validation, not data-loader start-up), kept across resumes, and
    written with the hardware into every checkpoint (``checkpoint["codec_training"]``)."""

    def __init__(self):
        self.seconds = 0.0
        self._last: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last = None

    def on_validation_start(self, trainer, pl_module) -> None:
        self._last = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if self._last is not None:
            self.seconds += now - self._last
        self._last = now

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["codec_training"] = {
            "train_seconds": self.seconds, "hardware": hardware_description(pl_module.device),
            "world_size": int(trainer.world_size), "torch": str(torch.__version__),
            "precision": str(trainer.precision), **({"channels_last": True} if pl_module.channels_last else {}),
            **pl_module.codec.training_extra()}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.seconds = float(checkpoint.get("codec_training", {}).get("train_seconds", 0.0))


class CodecTask(L.LightningModule):
    """Trains any codec: Lightning drives it, the codec supplies losses and optimisers (module docstring)."""

    def __init__(self, codec: CodecModule, channels_last: bool = False):
        """``channels_last``: train with 4-D weights and batches in NHWC memory order. On CPUs whose oneDNN
        kernels prefer that order (with ``trainer.precision: bf16-mixed`` on AMX cores, about 2x the step rate of
        float32 NCHW for the hierarchical VAE) it only changes speed; the weights and checkpoints are the same."""
        super().__init__()
        if not isinstance(codec, CodecModule):
            raise TypeError(f"CodecTask trains a CodecModule, not {type(codec).__name__}")
        self.codec = codec
        self.parts = nn.ModuleDict(codec.training_parts())
        self.automatic_optimization = not codec.manual_optimization
        self.channels_last = bool(channels_last)
        # in the shape of this class's own argument, so that LightningCLI's resume (--ckpt_path) parses it back
        self.save_hyperparameters({"codec": {"class_path": f"{type(codec).__module__}.{type(codec).__name__}",
                                             "init_args": dict(codec.hparams)}})

    def forward(self, x):
        return self.codec(x)

    def configure_optimizers(self):
        return self.codec.configure_optimizers(self)

    def training_step(self, batch, batch_idx):
        return self.codec.training_step(self, batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        return self.codec.validation_step(self, batch, batch_idx)

    def on_fit_start(self) -> None:
        if self.channels_last:  # parameters are converted in place, so the optimiser keeps its references
            self.to(memory_format=torch.channels_last)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if not self.channels_last:
            return batch
        return apply_to_collection(batch, torch.Tensor, lambda t: t.contiguous(memory_format=torch.channels_last)
                                   if t.dim() == 4 else t)

    def configure_callbacks(self):
        return [TrainingClock()]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # resuming: let the codec adapt its buffers to the saved ones first (e.g. CompressAI's cached CDFs, whose
        # sizes depend on when they were last computed), as its own load_state_dict does
        sd = checkpoint.get("state_dict", {})
        self.codec._prepare_state_dict({k[len("codec."):]: v for k, v in sd.items() if k.startswith("codec.")})

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.train(mode)  # a codec may keep frozen parts in eval mode (video: the image codec)
        return self
