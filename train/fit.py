"""Train any codec with Lightning's CLI (checkpointing, resume, logging, mixed precision, DDP come from Lightning).

    python train/fit.py fit --config train/configs/msh-base.yaml
    python train/fit.py fit --config train/configs/msh-base.yaml --config train/configs/msh-q3.yaml
    python train/fit.py fit --config ... --ckpt_path runs/msh-q3/checkpoints/last.ckpt          (resume)
    python train/fit.py fit --config ... --trainer.strategy ddp --trainer.devices 2 --trainer.accelerator cpu

The model is a :class:`codec.train.task.CodecTask` around any codec: ``--model.codec.class_path`` takes a codec
class (``codec.codecs.image.FactorizedPrior``, or a class of your own that subclasses
:class:`codec.codecs.base.CodecModule`: see docs/custom_codec.md) and ``--data.class_path`` any data module
(``codec.train.data.ImageFolderData``...). Several ``--config`` files merge in order: a base and small overrides.
Turn a training checkpoint into a standalone one with ``codec export CKPT -o model.pt``.
"""

from __future__ import annotations

import sys


def main(args=None):
    try:
        import lightning as L
        from lightning.pytorch.cli import LightningCLI

        import codec.train.data  # noqa: F401  (data modules for class_path resolution)
        from codec.codecs.base import registered_codecs
        from codec.train.task import CodecTask
    except ImportError as e:  # pragma: no cover - installation problem
        sys.exit(f"fit.py: cannot import the codec package ({e}); install it first: pip install -e .")
    registered_codecs()  # the shipped families, so short class names resolve too
    return LightningCLI(CodecTask, L.LightningDataModule, subclass_mode_model=False, subclass_mode_data=True,
                        save_config_kwargs={"overwrite": True}, args=args)


if __name__ == "__main__":
    main()
