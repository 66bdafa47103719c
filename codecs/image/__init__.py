"""Learned image codecs: factorized prior, scale hyperprior, mean-scale hyperprior (see :mod:`.models`)."""

from codec.codecs.image.models import FactorizedPrior, ImageCodec, MeanScaleHyperprior, ScaleHyperprior

__all__ = ["FactorizedPrior", "ImageCodec", "MeanScaleHyperprior", "ScaleHyperprior"]
