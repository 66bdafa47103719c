"""Exceptions of the codec package.

Every error a user can provoke with bad input (a missing file, an unsupported format, a corrupt or truncated
bitstream, a wrong checkpoint) is a subclass of :class:`CodecError`, so callers and the CLI can catch one type and
print one clear line.
"""


class CodecError(Exception):
    """Base class of every error the package raises on bad input."""


class EntropyError(CodecError, ValueError):
    """Bad input to the entropy layer: invalid tables, indexes, symbols, or corrupt/truncated coded data."""


class BitstreamError(CodecError, ValueError):
    """A container file that is truncated, corrupted, hostile, or made by another codec/checkpoint."""


class CheckpointError(CodecError, ValueError):
    """A checkpoint that is missing, of the wrong codec, or does not match the manifest."""


class MediaError(CodecError, ValueError):
    """A media file that is missing or in an unsupported format."""


class DivergenceError(BitstreamError, EntropyError):
    """A decode that diverged from its encoder: the bytes are intact (their CRCs check) but decoding them does not
    reproduce the encoder's symbols. Kept apart from corruption: the likely causes are a platform whose arithmetic
    differs in a part that is not exact (files of an older format) or a model other than the encoder's."""
