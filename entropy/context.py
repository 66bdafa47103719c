"""A learned context model for integer latent images and sequences: the probability model of WaLLoC's latents.

The latents of a shallow autoencoder keep much of the spatial (or temporal) correlation of the signal: channel 0 of
a 2D WaLLoC latent is close to a 1/8-size thumbnail. An i.i.d. per-channel histogram ignores that; lossless image
coders (WebP, which walloc uses as its container) exploit it with spatial prediction. This model does the same with
integer arithmetic only, vectorised, and codes through :mod:`codec.entropy`:

- **Polyphase pyramid.** ``S_0`` is the latent (C, H, W) (or (C, T) in 1D); ``S_{k+1}`` keeps its even positions.
  The coarsest level is coded with one table per channel. Every finer level is coded given the coarser one, phase
  by phase: in 2D (even row, odd col), then (odd row, even col), then (odd, odd); in 1D the odd positions.
- **Prediction and context.** A value is predicted by the rounded mean of its already-decoded neighbours at that
  level (left/right, up/down, or the four edge neighbours; edges replicate), and the residual ``value - prediction``
  is coded with a table chosen by (channel, phase, activity bucket), activity being ``max - min`` of those
  neighbours (flat regions get peaked tables, edges wide ones), as in JPEG-LS / CALIC context modelling.
- **Cross-channel context** (``cross`` > 0, the 2D image model). Within a step the channels are
  coded in order, and channel c's activity becomes ``activity + cross * m`` with ``m`` the (floor) mean absolute
  residual of channels 0..c-1 at the same positions: a position where the earlier channels were hard to predict
  gets a wider table. Same number of tables; measured on Kodak with tables counted on BSDS500 (``cross`` = 3):
  4.1 % fewer ideal bits than ``cross`` = 0. Optionally (``set_weights``) the channel's prediction also adds a
  least-squares combination of the earlier channels' spatial residuals at the same position (integer weights in
  64ths, one lower-triangular matrix per level and phase, fitted on training latents by :meth:`fit_weights`):
  another 1.7 %.
- **Learned tables.** Counts of symbols per table, accumulated over training latents (:meth:`ContextModel.count`,
  an exponential moving average during training), become :class:`CdfTables` at export (add-one smoothing; values
  outside a table's range are escape-coded, never clipped).

Everything the decoder computes (predictions, contexts) is integer and depends only on decoded values, so decoding
is exact on every platform.
"""

from __future__ import annotations

import math

import numpy as np

from codec.errors import EntropyError

#: activity (max - min of the neighbours) bucket edges: bucket b holds activities in [EDGES[b], EDGES[b + 1])
ACTIVITY_EDGES = np.array([0, 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 96], dtype=np.int64)


class ContextModel:
    """Pyramid context model for int latents of ``channels`` channels with values in ``[-radius, radius]``.

    ``ndim`` is 1 (sequences (C, T)) or 2 (images (C, H, W)); ``levels`` pyramid levels at most (fewer when a
    dimension would drop below 2). Table layout: ``channels`` root tables, then one per (phase, bucket, channel).
    """

    def __init__(self, channels: int, ndim: int, radius: int, levels: int = 4, cross: int = 0):
        if ndim not in (1, 2):
            raise EntropyError(f"the context model is for 1D or 2D latents, not {ndim}D")
        if not 0 <= int(cross) <= 16:
            raise EntropyError(f"cross-channel context weight must be in 0..16, got {cross}")
        self.C, self.ndim, self.radius, self.levels = int(channels), int(ndim), int(radius), int(levels)
        self.cross = int(cross)
        self.weights: np.ndarray | None = None  # (levels, phases, C, C) int64, 64ths, strictly lower triangular
        self.phases = 1 if ndim == 1 else 3
        self.buckets = len(ACTIVITY_EDGES)
        self.alphabet = 2 * self.radius + 1

    @property
    def num_tables(self) -> int:
        return self.C * (1 + self.phases * self.buckets)

    def _bucket(self, activity: np.ndarray) -> np.ndarray:
        return np.searchsorted(ACTIVITY_EDGES, activity, side="right") - 1

    def _table(self, phase: int, bucket: np.ndarray) -> np.ndarray:
        c = np.arange(self.C).reshape((1, self.C) + (1,) * self.ndim)
        return self.C + (phase * self.buckets + bucket) * self.C + c

    def _num_levels(self, spatial) -> int:
        n = 0
        while n < self.levels and min(spatial) >= 2:
            spatial = [(s + 1) // 2 for s in spatial]
            n += 1
        return n

    # ------------------------------------------------------------------------------------------------ the plan
    @staticmethod
    def _next(known: np.ndarray, axis: int, n: int) -> np.ndarray:
        """The known neighbour after each odd position along ``axis`` (edge: replicate the one before)."""
        nxt = np.take(known, np.arange(1, known.shape[axis]), axis=axis)
        if nxt.shape[axis] < n:
            nxt = np.concatenate([nxt, np.take(known, [known.shape[axis] - 1], axis=axis)], axis=axis)
        return nxt

    def _steps(self, shape):
        """The coding plan for a latent of ``shape`` (N, C, *spatial): the root slice, then per level and phase the
        slice of positions coded and a function giving (prediction, table) from the level's known values."""
        spatial = list(shape[2:])
        L = self._num_levels(spatial)
        sizes = [spatial]
        for _ in range(L):
            sizes.append([(s + 1) // 2 for s in sizes[-1]])
        return L, sizes

    def _phase_context(self, rec: np.ndarray, phase: int):
        """(prediction, activity) for the positions of ``phase`` at one level, from the known values in ``rec``
        (a level array with the even positions, and the earlier phases, filled in)."""
        a = -1 if self.ndim == 1 else -2  # row axis (2D) / time axis (1D)
        if self.ndim == 1:
            known = rec[..., 0::2]
            n = rec.shape[-1] // 2
            nb = [known[..., :n], self._next(known, -1, n)]
        elif phase == 0:      # (even row, odd col): left / right
            known = rec[..., 0::2, 0::2]
            n = rec.shape[-1] // 2
            nb = [known[..., :n], self._next(known, -1, n)]
        elif phase == 1:      # (odd row, even col): up / down
            known = rec[..., 0::2, 0::2]
            n = rec.shape[-2] // 2
            nb = [known[..., :n, :], self._next(known, a, n)]
        else:                 # (odd row, odd col): left/right from phase 1, up/down from phase 0
            h2, w2 = rec.shape[-2] // 2, rec.shape[-1] // 2
            lr = rec[..., 1::2, 0::2][..., :h2, :]
            ud = rec[..., 0::2, 1::2][..., :, :w2]
            nb = [lr[..., :w2], self._next(lr, -1, w2), ud[..., :h2, :], self._next(ud, a, h2)]
        nb = np.stack([x.astype(np.int64) for x in nb])
        k = nb.shape[0]
        pred = np.floor_divide(nb.sum(0) + k // 2, k)
        return pred, nb.max(0) - nb.min(0)

    @staticmethod
    def _phase_slice(ndim: int, phase: int):
        if ndim == 1:
            return (Ellipsis, slice(1, None, 2))
        return [(Ellipsis, slice(0, None, 2), slice(1, None, 2)), (Ellipsis, slice(1, None, 2), slice(0, None, 2)),
                (Ellipsis, slice(1, None, 2), slice(1, None, 2))][phase]

    def _even(self, x: np.ndarray) -> np.ndarray:
        return x[..., 0::2] if self.ndim == 1 else x[..., 0::2, 0::2]

    def set_weights(self, weights) -> None:
        """Cross-channel prediction weights (``levels x phases x C x C`` integers in 64ths, strictly lower
        triangular), or None. Needs ``cross`` > 0 (channel-by-channel coding)."""
        if weights is None:
            self.weights = None
            return
        w = np.asarray(weights)
        if w.dtype.kind not in "iu" or w.shape != (self.levels, self.phases, self.C, self.C):
            raise EntropyError(f"cross-channel weights must be integers of shape "
                               f"{(self.levels, self.phases, self.C, self.C)}, got {w.dtype} {w.shape}")
        if not self.cross:
            raise EntropyError("cross-channel weights need the cross-channel context (cross > 0)")
        if np.any(np.triu(w, 0)) or np.abs(w).max(initial=0) > 1 << 16:
            raise EntropyError("cross-channel weights must be strictly lower triangular and at most 2**16")
        self.weights = w.astype(np.int64)

    def _adjust(self, lev: int, ph: int, r: np.ndarray) -> np.ndarray:
        """The cross-channel prediction (N, C, ...) from the spatial residuals ``r`` of all channels (encoder)."""
        w = self.weights[lev, ph]
        return np.floor_divide(np.einsum("cd,nd...->nc...", w, r) + 32, 64)

    @staticmethod
    def _residual_products(r: np.ndarray) -> np.ndarray:
        x = r.swapaxes(0, 1).reshape(r.shape[1], -1).astype(np.float64)
        return x @ x.T

    def fit_weights(self, latents) -> np.ndarray:
        """Least-squares cross-channel weights (see :meth:`set_weights`) from training latents (an iterable of
        (N, C, *spatial) integer arrays), per level and phase; sets and returns them."""
        if not self.cross:
            raise EntropyError("cross-channel weights need the cross-channel context (cross > 0)")
        gram = np.zeros((self.levels, self.phases, self.C, self.C))
        for sym in latents:
            sym = self._check(sym)
            L, _ = self._steps(sym.shape)
            pyr = [sym]
            for _ in range(L):
                pyr.append(self._even(pyr[-1]))
            for lev in range(L - 1, -1, -1):
                for ph in range(self.phases):
                    pred, _ = self._phase_context(pyr[lev], ph)
                    gram[lev, ph] += self._residual_products(pyr[lev][self._phase_slice(self.ndim, ph)] - pred)
        w = np.zeros(gram.shape, dtype=np.int64)
        for lev in range(self.levels):
            for ph in range(self.phases):
                g = gram[lev, ph]
                for c in range(1, self.C):
                    a = g[:c, :c] + 1e-6 * np.eye(c) * max(1.0, np.trace(g[:c, :c]) / c)
                    if np.trace(a) > 0:
                        w[lev, ph, c, :c] = np.round(64 * np.linalg.solve(a, g[:c, c]))
        w = np.clip(w, -(1 << 16), 1 << 16)
        self.set_weights(w)
        return w

    def _cross_activity(self, act: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """``act + cross * m``, m the floor mean |residual| of the earlier channels at each position (channel 0:
        ``act``); ``residual`` (N, C, ...) fully known (encoder, counting)."""
        a = np.abs(residual)
        cs = np.cumsum(a, axis=1)
        cnt = np.arange(1, self.C).reshape((1, self.C - 1) + (1,) * self.ndim)
        m = np.concatenate([np.zeros_like(a[:, :1]), cs[:, :-1] // cnt], axis=1)
        return act + self.cross * m

    def _walk(self, sym: np.ndarray):
        """Yield (values, tables, offset) in coding order for a fully known ``sym`` (N, C, *spatial); with a
        cross-channel context each step is coded channel by channel (see :meth:`encode`)."""
        L, _ = self._steps(sym.shape)
        pyr = [sym]
        for _ in range(L):
            pyr.append(self._even(pyr[-1]))
        root = pyr[L]
        c = np.broadcast_to(np.arange(self.C).reshape((1, self.C) + (1,) * self.ndim), root.shape)
        yield root, c, 0
        for lev in range(L - 1, -1, -1):
            rec = pyr[lev]
            for ph in range(self.phases):
                pred, act = self._phase_context(rec, ph)
                vals = rec[self._phase_slice(self.ndim, ph)].astype(np.int64)
                if self.cross:
                    if self.weights is not None:
                        pred = pred + self._adjust(lev, ph, vals - pred)
                    act = self._cross_activity(act, vals - pred)
                yield vals, self._table(ph, self._bucket(act)), pred

    # ------------------------------------------------------------------------------------------------ fitting
    def count(self, sym: np.ndarray) -> np.ndarray:
        """Symbol counts per table, shape (num_tables, alphabet), for latents ``sym`` (N, C, *spatial); values
        outside a table's range are not counted (they are escape-coded)."""
        sym = self._check(sym)
        counts = np.zeros(self.num_tables * self.alphabet, dtype=np.int64)
        for vals, tab, pred in self._walk(sym):
            r = (vals - pred).reshape(-1) + self.radius
            t = np.broadcast_to(tab, vals.shape).reshape(-1)
            ok = (r >= 0) & (r < self.alphabet)
            counts += np.bincount(t[ok] * self.alphabet + r[ok], minlength=counts.size)
        return counts.reshape(self.num_tables, self.alphabet)

    def tables(self, counts, precision: int = 16, smoothing: float = 1.0):
        """Frozen :class:`CdfTables` from counts (``smoothing`` added to every count, 1 = add-one; every symbol
        keeps at least one unit at ``precision`` bits; escape bin last)."""
        from codec.entropy.tables import CdfTables

        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.num_tables, self.alphabet):
            raise EntropyError(f"counts must have shape {(self.num_tables, self.alphabet)}, got {counts.shape}")
        if not 0 < float(smoothing) <= 16:
            raise EntropyError(f"smoothing must be in (0, 16], got {smoothing}")
        if float(smoothing) == 1.0:
            return CdfTables.from_counts(counts, offsets=-self.radius, precision=precision)
        pmfs = (counts + smoothing) / (counts + smoothing).sum(axis=1, keepdims=True)
        return CdfTables.from_pmfs(list(pmfs), offsets=-self.radius, precision=precision, tail_mass=0.0)

    # ------------------------------------------------------------------------------------------------ coding
    def _check(self, sym) -> np.ndarray:
        sym = np.asarray(sym)
        if sym.dtype.kind not in "iu" or sym.ndim != self.ndim + 2 or sym.shape[1] != self.C:
            raise EntropyError(f"latents must be integers of shape (N, {self.C}, {'T' if self.ndim == 1 else 'H, W'})"
                               f", got {sym.dtype} {sym.shape}")
        if min(sym.shape[2:], default=0) < 1:
            raise EntropyError(f"empty latent {sym.shape}")
        return sym.astype(np.int64)

    def encode(self, sym, tables) -> bytes:
        from codec.entropy.coder import Encoder

        enc = Encoder(tables)
        self.encode_into(enc, self._check(sym))
        return enc.finish()

    def encode_into(self, enc, sym: np.ndarray, stop: int = 0) -> None:
        """Queue the root and the levels ``L-1 .. stop`` of ``sym`` (checked) on the :class:`Encoder` ``enc``
        (levels below ``stop`` are left to another model, see :mod:`codec.entropy.neural`)."""
        L, _ = self._steps(sym.shape)
        n = 1 + (L - min(stop, L)) * self.phases
        for i, (vals, tab, pred) in enumerate(self._walk(sym)):
            if i >= n:
                break
            r, t = vals - pred, np.broadcast_to(tab, vals.shape)
            if self.cross and i > 0:  # channel by channel, as the decoder needs the earlier channels first
                for c in range(self.C):
                    enc.encode(r[:, c].reshape(-1), t[:, c].reshape(-1))
            else:
                enc.encode(r.reshape(-1), t.reshape(-1))

    def _check_shape(self, shape) -> tuple:
        shape = tuple(int(s) for s in shape)
        if len(shape) != self.ndim + 2 or shape[1] != self.C or min(shape) < 1:
            raise EntropyError(f"bad latent shape {shape} for this context model")
        return shape

    def decode(self, data: bytes, shape, tables) -> np.ndarray:
        from codec.entropy.coder import Decoder

        shape = self._check_shape(shape)
        dec = Decoder(data, tables)
        dec.expect(math.prod(shape))
        cur = self.decode_from(dec, shape)
        dec.finish()
        return cur.astype(np.int32)

    def decode_from(self, dec, shape, stop: int = 0) -> np.ndarray:
        """Decode the root and the levels ``L-1 .. stop`` from the :class:`Decoder` ``dec``: the latent's
        pyramid level ``min(stop, L)`` (int64)."""
        L, sizes = self._steps(shape)
        lead = shape[:2]
        c = np.broadcast_to(np.arange(self.C).reshape((1, self.C) + (1,) * self.ndim), lead + tuple(sizes[L]))
        cur = dec.decode(c.reshape(-1)).reshape(c.shape).astype(np.int64)
        for lev in range(L - 1, min(stop, L) - 1, -1):
            rec = np.zeros(lead + tuple(sizes[lev]), dtype=np.int64)
            if self.ndim == 1:
                rec[..., 0::2] = cur
            else:
                rec[..., 0::2, 0::2] = cur
            for ph in range(self.phases):
                pred, act = self._phase_context(rec, ph)
                if self.cross:
                    r = np.zeros(pred.shape, dtype=np.int64)  # spatial residuals value - pred
                    total = np.zeros((pred.shape[0],) + pred.shape[2:], dtype=np.int64)
                    w = None if self.weights is None else self.weights[lev, ph]
                    for c in range(self.C):
                        a = act[:, c] + self.cross * (total // c if c else 0)
                        t = self.C + (ph * self.buckets + self._bucket(a)) * self.C + c
                        e = dec.decode(t.reshape(-1)).reshape(t.shape).astype(np.int64)
                        adj = 0 if w is None or c == 0 else np.floor_divide(
                            np.einsum("d,nd...->n...", w[c, :c], r[:, :c]) + 32, 64)
                        r[:, c] = e + adj
                        total += np.abs(e)
                else:
                    tab = np.broadcast_to(self._table(ph, self._bucket(act)), pred.shape)
                    r = dec.decode(tab.reshape(-1)).reshape(pred.shape).astype(np.int64)
                rec[self._phase_slice(self.ndim, ph)] = r + pred
            cur = rec
        return cur
