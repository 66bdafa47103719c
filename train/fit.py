"""Train any codec with Lightning's CLI (checkpointing, resume, logging, mixed precision, DDP come from Lightning).

    python train/fit.py fit --config train/configs/msh-q3.yaml
    python train/fit.py fit --config train/configs/msh-q3.yaml --ckpt_path runs/msh-q3/checkpoints/last.ckpt
    python train/fit.py fit --config ... --trainer.strategy ddp --trainer.devices 2 --trainer.accelerator cpu

``--model.class_path`` takes any codec LightningModule (e.g. ``codec.codecs.image.FactorizedPrior``) and
``--data.class_path`` any data module (e.g. ``codec.train.data.ImageFolderData``). Turn a training checkpoint into
a shipped one with ``codec export``.
"""

from __future__ import annotations

import sys


def main(args=None):
    try:
        from lightning.pytorch.cli import LightningCLI

        import codec.codecs.image  # noqa: F401  (registers the codecs for class_path resolution)
        import codec.codecs.wavelet  # noqa: F401
        import codec.codecs.audio  # noqa: F401
        import codec.codecs.video  # noqa: F401
        import codec.train.data  # noqa: F401
    except ImportError as e:  # pragma: no cover - installation problem
        sys.exit(f"fit.py: cannot import the codec package ({e}); install it first: pip install -e .")
    import lightning as L

    return LightningCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                        subclass_mode_data=True, save_config_kwargs={"overwrite": True}, args=args)


if __name__ == "__main__":
    main()
