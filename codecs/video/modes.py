"""P-frame block modes: the format's constants, the mode-map probability vectors, and the encoder's mode search
(a mixin of :class:`codec.codecs.video.models.LatentVideoCodec`). Everything the decoder repeats from these is
integer (the modes, copy-scale indexes and mode-pmf index are read from the stream)."""

from __future__ import annotations

import numpy as np
import torch

from codec.entropy import intnet

#: a new rANS stream starts at every intra frame and at least every SEGMENT frames (bounded encoder memory)
SEGMENT = 32
MAX_FRAMES = 1 << 24
#: P frames: one prior per BLOCK x BLOCK latent positions (BLOCK 1: each 16 x 16 pixels), chosen by the encoder
BLOCK = 1
#: block modes: intra (hyperprior), learned temporal prior, then COPY_CLASSES copy modes (mean = the previous
#: decoded latent; each class has its own scales, so blocks that change little and blocks that change more are
#: told apart by the encoder)
MODE_INTRA, MODE_LEARNED, MODE_COPY = 0, 1, 2
COPY_CLASSES = 2
NMODES = MODE_COPY + COPY_CLASSES


def _compositions(total: int, parts: int):
    if parts == 1:
        yield (total,)
        return
    for a in range(total + 1):
        for rest in _compositions(total - a, parts - 1):
            yield (a,) + rest


#: the block-mode map codes with one of these probability vectors (counts of the modes out of 12, plus 0.2), the
#: one the encoder picks for the frame (its index is signalled)
MODE_PMFS = [tuple(c + 0.2 for c in comp) for comp in _compositions(12, NMODES)]
#: copy-mode scales: one Gaussian table index per bin of the hyperprior's scale index, signalled per P frame
BINS = 16
#: the P-frame format this module writes (payload int ``pformat``); files without it predate block modes
PFORMAT = 5
_COPY_RANGE = 64  # copy-scale fitting counts residuals in [-64, 64] (larger ones as +-64)


def mode_pmf_index(modes: np.ndarray) -> int:
    """Index of the :data:`MODE_PMFS` vector that codes this block-mode map in fewest bits."""
    counts = np.bincount(np.asarray(modes).reshape(-1), minlength=NMODES)
    logp = np.log2(np.asarray(MODE_PMFS) / np.asarray(MODE_PMFS).sum(1, keepdims=True))
    return int(np.argmin(-(logp @ counts)))


def round_cpu(x: torch.Tensor, mean_int: torch.Tensor) -> np.ndarray:
    """Encoder side: int64 ``round(x - mean)`` for a float ``x`` and a fixed-point mean (numpy, on the CPU)."""
    return torch.round(x - intnet.from_fixed(mean_int)).to(torch.int64).cpu().numpy()


def fixed_latent(sym: np.ndarray, means_int: torch.Tensor) -> torch.Tensor:
    """The decoded latent in fixed point: ``symbol * 2**A_BITS + mean`` (int64, exact)."""
    return (torch.from_numpy(np.asarray(sym, dtype=np.int64)).to(means_int.device) << intnet.A_BITS) + means_int


class ModeSearch:
    """The encoder's P-frame decisions and the per-element priors they imply (needs ``joint_tables``,
    ``_table_layout``, ``_temporal_fixed`` and ``image`` from the codec)."""

    def _copy_costs(self) -> np.ndarray:
        """bits[k, v + R] of residual v in [-R, R] under Gaussian table k (exact, from the frozen tables)."""
        if getattr(self, "_copy_cost", None) is None:
            tables = self.joint_tables()
            g0 = self._table_layout()[0]
            ng = self.image.tables["gaussian"].num_tables
            v = np.arange(-_COPY_RANGE, _COPY_RANGE + 1)
            k = np.repeat(np.arange(ng), v.size)
            self._copy_cost = tables.element_bits(np.tile(v, ng), k + g0).reshape(ng, v.size)
        return self._copy_cost

    def _fit_copy_scales(self, sym: np.ndarray, bins: np.ndarray, mask: np.ndarray | None,
                         fallback: np.ndarray | None) -> np.ndarray:
        """Per bin, the Gaussian table index that codes the copy residuals ``sym`` (where ``mask``) in fewest bits."""
        cost = self._copy_costs()
        vals = np.clip(sym, -_COPY_RANGE, _COPY_RANGE) + _COPY_RANGE
        kb = np.zeros(BINS, dtype=np.int64) if fallback is None else fallback.copy()
        for b in range(BINS):
            sel = bins == b
            if mask is not None:
                sel &= mask
            if sel.any():
                kb[b] = int(np.argmin(cost @ np.bincount(vals[sel], minlength=cost.shape[1])))
        return kb

    @staticmethod
    def _block_sums(bits: np.ndarray) -> np.ndarray:
        """(C, h, w) per-element bits -> (hb, wb) bits per BLOCK x BLOCK block (all channels)."""
        c, h, w = bits.shape
        hb, wb = -(-h // BLOCK), -(-w // BLOCK)
        pad = np.zeros((c, hb * BLOCK, wb * BLOCK))
        pad[:, :h, :w] = bits
        return pad.reshape(c, hb, BLOCK, wb, BLOCK).sum(axis=(0, 2, 4))

    @staticmethod
    def _expand(blocks: np.ndarray, h: int, w: int) -> np.ndarray:
        return np.repeat(np.repeat(blocks, BLOCK, 0), BLOCK, 1)[:h, :w]

    def _block_prior(self, modes: np.ndarray, kb: np.ndarray, idx_h: np.ndarray, scales_h, means_h, y_prev,
                     learned: tuple | None = None):
        """Per-element (Gaussian table index, mean) of a P frame from its block modes and copy scales ``kb``
        ((COPY_CLASSES, BINS)); the learned prior is evaluated only when a block uses it (``learned``: its
        (indexes, means) when the caller has them already). All integer: returns (indexes (1, M, h, w) int64 into the
        Gaussian tables, means int64 at ``2**A_BITS``)."""
        h, w = idx_h.shape[-2:]
        me = self._expand(modes, h, w)[None, None]
        idx = np.where(me == MODE_INTRA, idx_h, 0).astype(np.int64)
        dev = means_h.device
        means = torch.where(torch.from_numpy(me == MODE_INTRA).to(dev), means_h, y_prev)
        if (modes == MODE_LEARNED).any():
            idx_l, means_l = learned if learned is not None else self._temporal_fixed(y_prev, means_h, scales_h)
            idx = np.where(me == MODE_LEARNED, idx_l, idx)
            means = torch.where(torch.from_numpy(me == MODE_LEARNED).to(dev), means_l, means)
        ng = self.image.tables["gaussian"].num_tables
        for j in range(COPY_CLASSES):
            copy = np.broadcast_to(me == MODE_COPY + j, idx_h.shape)
            idx[copy] = kb[j, idx_h[copy] * BINS // ng]
        return idx, means

    def _copy_bins(self, modes: np.ndarray, idx_h: np.ndarray) -> list:
        """Per copy class, the scale bins (sorted) its elements fall in: only their scales are sent."""
        h, w = idx_h.shape[-2:]
        me = self._expand(modes, h, w)[None, None]
        ng = self.image.tables["gaussian"].num_tables
        return [np.unique(idx_h[np.broadcast_to(me == MODE_COPY + j, idx_h.shape)].astype(np.int64) * BINS // ng)
                for j in range(COPY_CLASSES)]

    def _choose_p_modes(self, y, scales_h, means_h, idx_h, y_prev):
        """The encoder's P-frame decision: copy-mode scales fitted to the frame (per copy class and bin of the
        hyperprior scale) and, per block, the prior that codes it in fewest bits; three rounds (each class's scales
        are refitted on the blocks that chose it, and the mode map's own cost is counted). Returns (modes (hb, wb),
        kb (COPY_CLASSES, BINS), bits of the frame's y under that choice, bits of the frame's y coded intra, the
        learned prior's (indexes, means))."""
        tables = self.joint_tables()
        g0 = self._table_layout()[0]
        shape = tuple(y.shape[1:])
        ng = self.image.tables["gaussian"].num_tables
        sym_i = round_cpu(y, means_h)
        bits_i = tables.element_bits(sym_i, idx_h.astype(np.int64) + g0).reshape(shape)
        idx_l, means_l = self._temporal_fixed(y_prev, means_h, scales_h)
        sym_l = round_cpu(y, means_l)
        bits_l = tables.element_bits(sym_l, idx_l.astype(np.int64) + g0).reshape(shape)
        sym_c = round_cpu(y, y_prev)[0]
        bins = idx_h[0].astype(np.int64) * BINS // ng
        sums = [self._block_sums(bits_i), self._block_sums(bits_l)]
        # start: one set of copy scales over all elements; the blocks it codes at more bits per element than the
        # median seed the other classes (in order of cost)
        k0 = self._fit_copy_scales(sym_c, bins, None, None)
        c0 = self._block_sums(tables.element_bits(sym_c, k0[bins] + g0).reshape(shape))
        edges = np.quantile(c0, np.linspace(0, 1, COPY_CLASSES + 1)[1:-1])
        modes = MODE_COPY + np.searchsorted(edges, c0)
        kb = np.repeat(k0[None], COPY_CLASSES, 0)
        mode_bits = np.zeros(NMODES)
        for _ in range(3):
            me = self._expand(modes, *shape[1:])
            costs = []
            for j in range(COPY_CLASSES):
                kb[j] = self._fit_copy_scales(sym_c, bins, np.broadcast_to(me == MODE_COPY + j, shape), kb[j])
                costs.append(self._block_sums(tables.element_bits(sym_c, kb[j][bins] + g0).reshape(shape)))
            cost = np.stack(sums + costs)
            modes = (cost + mode_bits[:, None, None]).argmin(0)
            # the next round also counts each mode's own cost under the mode pmf this choice would signal
            pmf = np.asarray(MODE_PMFS[mode_pmf_index(modes)])
            mode_bits = -np.log2(pmf / pmf.sum())
        y_bits = float(np.take_along_axis(cost, modes[None], 0).sum())
        return modes.astype(np.int32), kb.astype(np.int32), y_bits, float(bits_i.sum()), (idx_l, means_l)

    def _z_copy(self, z: torch.Tensor, z_prev: torch.Tensor) -> tuple[int, np.ndarray, float]:
        """The hyper-latent's temporal option: ``z_t`` coded around the previous decoded ``z_hat_(t-1)`` with one
        Gaussian table for the frame (index ``k`` >= 1, signalled). Returns (k, symbols, bits)."""
        sym = round_cpu(z, z_prev)
        cost = self._copy_costs()
        hist = np.bincount(np.clip(sym, -_COPY_RANGE, _COPY_RANGE).reshape(-1) + _COPY_RANGE,
                           minlength=cost.shape[1])
        k = 1 + int(np.argmin(cost[1:] @ hist))
        g0 = self._table_layout()[0]
        return k, sym.astype(np.int32), self.joint_tables().information_content(sym, k + g0)
