"""Video: a low-delay P-frame codec on top of the shipped image codec with a learned temporal prior."""

from codec.codecs.video.models import LatentVideoCodec, TemporalPrior  # noqa: F401
