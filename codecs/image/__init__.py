"""Learned image codecs: factorized prior, scale hyperprior, mean-scale hyperprior (see :mod:`.models`), and the
hierarchical VAE (:mod:`.hvae`)."""

from codec.codecs.image.hvae import QResVAE
from codec.codecs.image.models import FactorizedPrior, ImageCodec, MeanScaleHyperprior, ScaleHyperprior

__all__ = ["FactorizedPrior", "ImageCodec", "MeanScaleHyperprior", "QResVAE", "ScaleHyperprior"]
