"""Learned image codecs: factorized prior, scale hyperprior, mean-scale hyperprior (see :mod:`.models`)."""

from codec.codecs.image.models import (
    IMAGE_CODECS,
    FactorizedPrior,
    ImageCodec,
    MeanScaleHyperprior,
    ScaleHyperprior,
    build_image_codec,
)

__all__ = ["IMAGE_CODECS", "FactorizedPrior", "ImageCodec", "MeanScaleHyperprior", "ScaleHyperprior",
           "build_image_codec"]
