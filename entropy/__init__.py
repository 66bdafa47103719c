"""The shared rANS entropy-coding layer (``codec.entropy``).

- :class:`CdfTables`: immutable integer CDF tables with a fingerprint, built once at export time.
- :func:`encode` / :func:`decode`: vectorised coding of integer arrays under per-symbol table indexes
  (or one shared table), escapes for out-of-range values; :class:`Encoder` / :class:`Decoder` for streaming.
- Adapters for CompressAI's ``EntropyBottleneck`` and ``GaussianConditional``.

Engine: constriction (pinned, ``perfect=False``); see :mod:`codec.entropy.coder`.
"""

from codec.errors import EntropyError
from codec.entropy.tables import CdfTables, quantize_pmf
from codec.entropy.coder import Decoder, Encoder, decode, encode
from codec.entropy.adapters import (
    entropy_bottleneck_dequantize,
    entropy_bottleneck_indexes,
    entropy_bottleneck_symbols,
    gaussian_conditional_dequantize,
    gaussian_conditional_indexes,
    gaussian_conditional_symbols,
    tables_from_compressai,
)

__all__ = [
    "CdfTables", "quantize_pmf", "encode", "decode", "Encoder", "Decoder", "EntropyError",
    "tables_from_compressai", "entropy_bottleneck_symbols", "entropy_bottleneck_indexes",
    "entropy_bottleneck_dequantize", "gaussian_conditional_symbols", "gaussian_conditional_indexes",
    "gaussian_conditional_dequantize",
]
