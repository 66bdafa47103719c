"""Adapters from CompressAI's entropy models to :class:`CdfTables`, so CompressAI-style models code through
:mod:`codec.entropy`.

CompressAI keeps, after ``update()``, ``_quantized_cdf`` (int32 rows ``[0, ..., 2**16]``, escape bin last),
``_cdf_length`` (entries per row = symbols + 1) and ``_offset`` (the value of symbol 0). That is our layout with
``lengths = _cdf_length - 1`` at 16-bit precision, so the conversion is exact and the symbols, indexes and
reconstructions are the ones CompressAI's own ``compress`` / ``decompress`` use.
"""

from __future__ import annotations

import numpy as np
import torch

from codec.errors import EntropyError
from codec.entropy.tables import CdfTables

COMPRESSAI_PRECISION = 16


def tables_from_compressai(module) -> CdfTables:
    """CdfTables of a CompressAI ``EntropyBottleneck`` or ``GaussianConditional`` (after ``update()``)."""
    for name in ("_quantized_cdf", "_cdf_length", "_offset"):
        if not hasattr(module, name):
            raise EntropyError(f"{type(module).__name__} is not a CompressAI entropy model (no {name})")
    cdf, lengths, offsets = module._quantized_cdf, module._cdf_length, module._offset
    if cdf.numel() == 0 or lengths.numel() == 0:
        raise EntropyError(f"{type(module).__name__} has no CDF tables yet: call update() (or update(force=True)) "
                           "on the model first")
    return CdfTables(cdf.cpu().numpy(), lengths.cpu().numpy().astype(np.int64) - 1, offsets.cpu().numpy(),
                     COMPRESSAI_PRECISION)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# --- EntropyBottleneck (factorized prior): one table per channel ------------------------------------------------
def entropy_bottleneck_symbols(eb, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, indexes) that CompressAI's ``EntropyBottleneck.compress(y)`` would code."""
    medians = eb._get_medians().detach()
    spatial = y.dim() - 2
    medians = medians.reshape(1, -1, *([1] * spatial))
    symbols = eb.quantize(y, "symbols", medians)
    indexes = eb._build_indexes(y.size())
    return _np(symbols).astype(np.int32), _np(indexes).astype(np.int32)


def entropy_bottleneck_indexes(eb, shape) -> np.ndarray:
    return _np(eb._build_indexes(torch.Size(shape))).astype(np.int32)


def entropy_bottleneck_dequantize(eb, symbols) -> torch.Tensor:
    medians = eb._get_medians().detach()
    s = torch.as_tensor(np.asarray(symbols), device=medians.device)
    medians = medians.reshape(1, -1, *([1] * (s.dim() - 2)))
    return eb.dequantize(s, medians)


# --- GaussianConditional (scale / mean-scale hyperprior): one table per scale bin --------------------------------
def gaussian_conditional_symbols(gc, y: torch.Tensor, scales: torch.Tensor, means=None):
    """(symbols, indexes) that CompressAI's ``GaussianConditional.compress(y, indexes, means)`` would code."""
    indexes = gc.build_indexes(scales)
    symbols = gc.quantize(y, "symbols", means)
    return _np(symbols).astype(np.int32), _np(indexes).astype(np.int32)


def gaussian_conditional_indexes(gc, scales: torch.Tensor) -> np.ndarray:
    return _np(gc.build_indexes(scales)).astype(np.int32)


def gaussian_conditional_dequantize(gc, symbols, means=None) -> torch.Tensor:
    return gc.dequantize(torch.as_tensor(np.asarray(symbols)), means)
