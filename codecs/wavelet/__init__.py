"""WaLLoC: wavelet packet transform + shallow asymmetric autoencoder + entropy bottleneck (1D and 2D)."""

from codec.codecs.wavelet.transform import WaveletPacket
from codec.codecs.wavelet.models import Codec1D, Codec2D, WaveletCodec

__all__ = ["WaveletPacket", "WaveletCodec", "Codec1D", "Codec2D"]
