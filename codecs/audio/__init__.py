"""RVQGAN audio codec (Improved RVQGAN / DAC design), mono to multichannel, with entropy-coded tokens."""

from codec.codecs.audio.models import RVQGAN, build_audio_codec

__all__ = ["RVQGAN", "build_audio_codec"]
