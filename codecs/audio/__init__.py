"""RVQGAN audio codec (Improved RVQGAN / DAC design), mono to multichannel, with entropy-coded tokens."""

from codec.codecs.audio.models import RVQGAN

__all__ = ["RVQGAN"]
