"""codec: learned codecs for images, audio and video on one shared rANS entropy layer.

Sub-packages: ``codec.entropy`` (rANS layer), ``codec.bitstream`` (container), ``codec.codecs`` (models),
``codec.train`` (Lightning training), ``codec.eval`` (RD evaluation, baselines, benchmarks).
"""

__version__ = "0.1.0"

from codec.config import data_root, repo_root  # noqa: E402
from codec.errors import BitstreamError, CheckpointError, CodecError, EntropyError, MediaError  # noqa: E402

__all__ = ["__version__", "data_root", "repo_root", "CodecError", "EntropyError", "BitstreamError",
           "CheckpointError", "MediaError"]
