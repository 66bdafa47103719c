"""A learned prior over residual-vector-quantiser tokens (RVQGAN codes), coded through :mod:`codec.entropy`.

Tokens: ``codes[q, t]`` in ``[0, V)`` for codebook ``q`` and frame ``t``. The prior of codebook ``q`` at frame ``t``
is a categorical distribution conditioned on a *context*, a cluster of an already-coded code (``K`` clusters from
k-means of each codebook's L2-normalised vectors, so codes that sound alike share a context):

- ``mode="prev"``: the previous frame's code in the same codebook (a start context for the first frame);
- ``mode="coarse"``: for codebook 0 the previous frame's code, for codebook q >= 1 the code of codebook q - 1 in the
  same frame (the residual codebooks depend most on the coarser code they refine).

Probabilities are Dirichlet-smoothed counts from training audio:

    p(v | q, k) = (n[q, k, v] + alpha * p0[q, v]) / (n[q, k] + alpha),    p0[q] = (sum_k n[q, k] + 1/2) normalised

so a context seen rarely falls back to the codebook's own frequencies (and K = 0 gives plain per-codebook
frequencies), and a share ``uniform`` (epsilon) of the mass is spread evenly over the codebook,

    p'(v | q, k) = (1 - epsilon) p(v | q, k) + epsilon / V,

which bounds the cost of a code the training audio never produced in that context (log2(V / epsilon) bits) and
keeps a prior fitted on little audio from costing more than fixed-length codes on audio unlike it. The integer tables are one per (codebook, context), built once at export (:meth:`TokenPrior.tables`).

Coding order: "prev": frame by frame (codebooks together inside a frame); "coarse": codebook 0 frame by frame, then
each further codebook over all frames at once (its contexts are all known by then), so decoding is vectorised for
every codebook but the first.
"""

from __future__ import annotations

import numpy as np

from codec.errors import EntropyError


class TokenPrior:
    def __init__(self, n_codebooks: int, codebook_size: int, contexts: int = 16, alpha: float = 32.0,
                 mode: str = "prev", uniform: float = 0.0):
        if n_codebooks < 1 or codebook_size < 2 or contexts < 0 or alpha <= 0 or not 0 <= uniform < 1:
            raise EntropyError("TokenPrior needs n_codebooks >= 1, codebook_size >= 2, contexts >= 0, alpha > 0, "
                               "0 <= uniform < 1")
        self.uniform = float(uniform)
        if mode not in ("prev", "coarse"):
            raise EntropyError(f"TokenPrior mode must be 'prev' or 'coarse', not {mode!r}")
        self.n_codebooks, self.V, self.contexts, self.alpha = int(n_codebooks), int(codebook_size), int(contexts), float(alpha)
        self.mode = mode

    @property
    def count_shape(self) -> tuple[int, int, int]:
        return (self.n_codebooks, self.contexts + 1, self.V)

    @property
    def start(self) -> int:
        """Context index of the first frame."""
        return self.contexts

    # ------------------------------------------------------------------------------------------------ fitting
    def context_map(self, codebooks, iters: int = 25, seed: int = 0) -> np.ndarray:
        """(n_codebooks, V) int32: the context cluster of each code, by spherical k-means of the codebook vectors
        (deterministic: fixed seed, farthest-point initialisation)."""
        out = np.zeros((self.n_codebooks, self.V), dtype=np.int32)
        k = self.contexts
        if k <= 1:
            return out
        rng = np.random.default_rng(seed)
        for q, cb in enumerate(codebooks[: self.n_codebooks]):
            x = np.asarray(cb, dtype=np.float64)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            cent = [x[int(rng.integers(len(x)))]]
            for _ in range(1, k):  # farthest point from the chosen centres
                d = np.min(np.stack([1 - x @ c for c in cent]), axis=0)
                cent.append(x[int(np.argmax(d))])
            c = np.stack(cent)
            for _ in range(iters):
                lab = np.argmax(x @ c.T, axis=1)
                for j in range(k):
                    m = x[lab == j]
                    if len(m):
                        v = m.sum(0)
                        c[j] = v / max(np.linalg.norm(v), 1e-12)
            out[q] = np.argmax(x @ c.T, axis=1)
        return out

    def _check(self, codes, cmap=None) -> np.ndarray:
        c = np.asarray(codes)
        if c.dtype.kind not in "iu" or c.ndim != 2 or not 1 <= c.shape[0] <= self.n_codebooks or c.shape[1] < 1:
            raise EntropyError(f"tokens must be integers of shape (n_q <= {self.n_codebooks}, frames), got "
                               f"{c.dtype} {c.shape}")
        if c.min() < 0 or c.max() >= self.V:
            raise EntropyError(f"tokens must lie in [0, {self.V})")
        if cmap is not None and np.shape(cmap) != (self.n_codebooks, self.V):
            raise EntropyError(f"context map must have shape {(self.n_codebooks, self.V)}, got {np.shape(cmap)}")
        return c.astype(np.int64)

    def contexts_of(self, codes: np.ndarray, cmap: np.ndarray) -> np.ndarray:
        """Context index of every token (n_q, frames)."""
        nq = codes.shape[0]
        ctx = np.full(codes.shape, self.start, dtype=np.int64)
        if self.contexts == 0:
            return ctx
        cm = np.asarray(cmap, dtype=np.int64)
        if self.mode == "prev":
            if codes.shape[1] > 1:
                ctx[:, 1:] = cm[np.arange(nq)[:, None], codes[:, :-1]]
        else:
            ctx[0, 1:] = cm[0, codes[0, :-1]]
            if nq > 1:
                ctx[1:, :] = cm[np.arange(nq - 1)[:, None], codes[:-1, :]]
        return ctx

    def count(self, codes, cmap) -> np.ndarray:
        """Counts (n_codebooks, contexts + 1, V) of the tokens ``codes`` (n_q, frames)."""
        c = self._check(codes, cmap)
        ctx = self.contexts_of(c, cmap)
        nq = c.shape[0]
        flat = (np.arange(nq)[:, None] * (self.contexts + 1) + ctx) * self.V + c
        n = np.bincount(flat.reshape(-1), minlength=int(np.prod(self.count_shape)))
        return n.reshape(self.count_shape).astype(np.float64)

    def pmfs(self, counts) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != self.count_shape:
            raise EntropyError(f"counts must have shape {self.count_shape}, got {counts.shape}")
        base = counts.sum(1) + 0.5
        base /= base.sum(1, keepdims=True)
        n = counts.sum(2, keepdims=True)
        p = (counts + self.alpha * base[:, None, :]) / (n + self.alpha)
        return (1 - self.uniform) * p + self.uniform / self.V

    def tables(self, counts, precision: int = 16):
        """Frozen :class:`CdfTables`, table ``q * (contexts + 1) + k`` for codebook q in context k."""
        from codec.entropy.tables import CdfTables

        p = self.pmfs(counts).reshape(-1, self.V)
        return CdfTables.from_pmfs(list(p), 0, precision, tail_mass=0.0)

    def bits(self, codes, cmap, tables) -> float:
        """Ideal code length of ``codes`` under the frozen tables (for reporting)."""
        c = self._check(codes, cmap)
        idx = np.arange(c.shape[0])[:, None] * (self.contexts + 1) + self.contexts_of(c, cmap)
        return tables.information_content(c, idx)

    # ------------------------------------------------------------------------------------------------ coding
    def _indexes(self, codes, cmap) -> np.ndarray:
        return np.arange(codes.shape[0])[:, None] * (self.contexts + 1) + self.contexts_of(codes, cmap)

    def encode(self, codes, cmap, tables) -> bytes:
        from codec.entropy.coder import Encoder

        c = self._check(codes, cmap)
        idx = self._indexes(c, cmap)
        enc = Encoder(tables)
        if self.contexts == 0:  # no dependence between frames: one vectorised chunk
            enc.encode(c, idx)
        elif self.mode == "prev":
            for t in range(c.shape[1]):
                enc.encode(c[:, t], idx[:, t])
        else:
            for t in range(c.shape[1]):
                enc.encode(c[0, t:t + 1], idx[0, t:t + 1])
            for q in range(1, c.shape[0]):
                enc.encode(c[q], idx[q])
        return enc.finish()

    def decode(self, data: bytes, shape, cmap, tables) -> np.ndarray:
        from codec.entropy.coder import Decoder

        nq, n = (int(s) for s in shape)
        if not 1 <= nq <= self.n_codebooks or n < 1:
            raise EntropyError(f"bad token shape {shape}")
        if np.shape(cmap) != (self.n_codebooks, self.V):
            raise EntropyError("bad context map")
        dec = Decoder(data, tables)
        dec.expect(nq * n)
        rows = np.arange(nq) * (self.contexts + 1)
        if self.contexts == 0:
            out = dec.decode(np.repeat(rows[:, None] + self.start, n, axis=1))
        elif self.mode == "coarse":
            cm = np.asarray(cmap, dtype=np.int64)[:nq]
            out = np.empty((nq, n), dtype=np.int32)
            ctx = self.start
            for t in range(n):
                v = int(dec.decode(np.array([ctx]))[0])
                if not 0 <= v < self.V:
                    raise EntropyError("coded tokens are corrupt (a code outside the codebook)")
                out[0, t] = v
                ctx = int(cm[0, v])
            for q in range(1, nq):
                v = dec.decode(rows[q] + cm[q - 1, out[q - 1]])
                if v.min() < 0 or v.max() >= self.V:
                    raise EntropyError("coded tokens are corrupt (a code outside the codebook)")
                out[q] = v
        else:
            cm = np.asarray(cmap, dtype=np.int64)[:nq]
            out = np.empty((nq, n), dtype=np.int32)
            ctx = np.full(nq, self.start, dtype=np.int64)
            q = np.arange(nq)
            for t in range(n):
                v = dec.decode(rows + ctx)
                if v.min() < 0 or v.max() >= self.V:
                    raise EntropyError("coded tokens are corrupt (a code outside the codebook)")
                out[:, t] = v
                ctx = cm[q, v]
        dec.finish()
        return out
