"""codec: learned codecs for images, audio and video on one shared rANS entropy layer.

    import codec
    data = codec.encode("photo.png")          # a path, array or tensor -> container bytes
    x = codec.decode(data)                    # -> RGB array, (samples, rate) or a Video
    model = codec.load_model("msh-q5")        # a shipped name / family, or an exported .pt file

Sub-packages: ``codec.entropy`` (rANS layer), ``codec.bitstream`` (container), ``codec.codecs`` (models),
``codec.train`` (Lightning training), ``codec.eval`` (RD evaluation, baselines, benchmarks).
"""

__version__ = "0.1.0"

from codec.config import data_root, repo_root  # noqa: E402
from codec.errors import BitstreamError, CheckpointError, CodecError, EntropyError, MediaError  # noqa: E402



def encode(x, model=None, **options) -> bytes:
    """Container bytes for a media path, array or tensor (see :func:`codec.api.encode`)."""
    from codec.api import encode as _encode

    return _encode(x, model, **options)


def decode(data, model=None, device=None, blocks: int | None = None):
    """Decode container bytes or a ``.cdc`` path (see :func:`codec.api.decode`); ``blocks``: progressive decoding
    of a hierarchical image model."""
    from codec.api import decode as _decode

    return _decode(data, model, device, blocks)


def load_model(model: str | None = None, quality: int | None = None, modality: str = "image", device=None):
    """A ready-to-code model by shipped name / family or ``.pt`` path (see :func:`codec.api.load_model`)."""
    from codec.api import load_model as _load

    return _load(model, quality, modality, device)


__all__ = ["__version__", "encode", "decode", "load_model", "data_root", "repo_root", "CodecError", "EntropyError",
           "BitstreamError", "CheckpointError", "MediaError"]
