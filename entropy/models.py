"""Probability models used in training, with both faces the DESIGN asks for: ``likelihood(...)`` for the rate term
of the training loss and ``tables()`` for coding.

They are CompressAI's entropy models (reused, not rewritten): the subclasses only add those two methods, so their
parameter and buffer names are CompressAI's own and a state_dict saved by CompressAI loads unchanged.

- :class:`EntropyBottleneck`: the factorized density of Ballé et al. 2018 (one table per channel).
- :class:`GaussianConditional`: a (mean-)scale Gaussian conditioned on a hyper-decoder (one table per scale bin).

``tables()`` rebuilds the integer CDFs from the current parameters; that happens only at export time (and in
tests). Shipped checkpoints store the resulting :class:`CdfTables` and decoders use those, never recomputing them
from floats.
"""

from __future__ import annotations

import torch

from codec.imports import light_compressai

light_compressai()  # CompressAI's modules without its package-wide imports (codec.imports)

from compressai.entropy_models import EntropyBottleneck as _CAIEntropyBottleneck  # noqa: E402
from compressai.entropy_models import GaussianConditional as _CAIGaussianConditional  # noqa: E402
from compressai.models.utils import remap_old_keys, update_registered_buffers  # noqa: E402

from codec.entropy.adapters import tables_from_compressai  # noqa: E402
from codec.entropy.tables import CdfTables  # noqa: E402

# The bins of the Gaussian tables: log-spaced scales in [0.11, 256] (CompressAI's range). CompressAI uses 64 levels;
# we use 256: a predicted scale is rounded UP to the next level, and with 64 levels (13 % apart) that cost 1.3 to
# 2.4 % more bits than the likelihood on Kodak (mostly from latents with small scales, whose few bits are sensitive
# to an overestimated scale); with 256 levels (3 % apart) the excess is 0.3 to 0.6 %. Tables are stored ragged, so
# the finer grid adds about 0.3 MB to a checkpoint. CompressAI state_dicts with their 64-level table still load (the
# buffer is resized); export rebuilds the tables on this grid.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 256
#: CompressAI buffers that only cache integer CDFs (rebuilt by update()); shipped checkpoints keep CdfTables instead
CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def default_scale_table(lo: float = SCALES_MIN, hi: float = SCALES_MAX, levels: int = SCALES_LEVELS) -> torch.Tensor:
    import math

    return torch.exp(torch.linspace(math.log(lo), math.log(hi), levels))


class EntropyBottleneck(_CAIEntropyBottleneck):
    """CompressAI's factorized entropy bottleneck + ``likelihood`` / ``tables``."""

    def likelihood(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Probability mass of the quantised ``y_hat`` under the learned factorized density."""
        perm = [1, 0] + list(range(2, y_hat.ndim))  # B x C x ... -> C x B x ..., as forward() does
        v = y_hat.permute(*perm).contiguous()
        shape = v.shape
        lik, _, _ = self._likelihood(v.reshape(v.size(0), 1, -1))
        if self.use_likelihood_bound:
            lik = self.likelihood_lower_bound(lik)
        return lik.reshape(shape).permute(*perm).contiguous()

    def tables(self) -> CdfTables:
        self.update(force=True)
        return tables_from_compressai(self)


class GaussianConditional(_CAIGaussianConditional):
    """CompressAI's Gaussian conditional + ``likelihood`` / ``tables``."""

    def __init__(self, scale_table=None, *args, **kwargs):
        if scale_table is None:
            scale_table = default_scale_table().tolist()
        super().__init__(scale_table, *args, **kwargs)

    def likelihood(self, y_hat: torch.Tensor, scales: torch.Tensor, means=None) -> torch.Tensor:
        lik = self._likelihood(y_hat, scales, means)
        return self.likelihood_lower_bound(lik) if self.use_likelihood_bound else lik

    def tables(self) -> CdfTables:
        self.update()
        return tables_from_compressai(self)


def load_entropy_buffers(module: torch.nn.Module, state_dict: dict) -> dict:
    """Resize the CDF buffers of every entropy model in ``module`` to the shapes in ``state_dict`` (they are empty
    until ``update()``) and remap CompressAI's pre-1.1 key names, as CompressAI's ``CompressionModel.load_state_dict``
    does. Returns the (possibly remapped) state_dict."""
    for name, m in module.named_modules():
        if not any(k.startswith(name + ".") for k in state_dict):
            continue
        present = [b for b in CDF_BUFFERS if f"{name}.{b}" in state_dict]  # shipped checkpoints leave them out
        if isinstance(m, _CAIEntropyBottleneck):
            update_registered_buffers(m, name, present, state_dict)
            state_dict = remap_old_keys(name, state_dict)
        elif isinstance(m, _CAIGaussianConditional):
            update_registered_buffers(m, name, present, state_dict)
            st = state_dict.get(f"{name}.scale_table")
            if st is not None and st.shape != m.scale_table.shape:  # e.g. CompressAI's 64 levels, our 256
                m.scale_table = torch.zeros_like(st, dtype=m.scale_table.dtype)
    return state_dict
