"""Training of the neural context model's networks (:mod:`codec.entropy.neural`): float PyTorch networks fitted on
training latents, then rounded to the integer networks the coder runs (:meth:`codec.entropy.neural.IntNet.from_float`).
Coding never imports this module."""

from __future__ import annotations

import numpy as np

from codec.entropy.neural import IN_SCALE, LS_MIN, LS_PER_UNIT, NBINS, IntNet, _phase_inputs, _target_slice
from codec.errors import EntropyError

def _float_net(cin: int, C: int, width: int, head: int):
    import torch
    from torch import nn

    class FloatNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0, self.c1, self.c2 = (nn.Conv2d(cin, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1),
                                         nn.Conv2d(width, width, 3, padding=1))
            self.hf = nn.Conv2d(width, C * head, 1)
            self.hv = nn.Parameter(torch.randn(C * head, C) * 0.05)
            mask = torch.zeros(C * head, C)
            for c in range(C):
                mask[c * head:(c + 1) * head, :c] = 1
            self.register_buffer("mask", mask)
            self.out = nn.Conv2d(C * head, 2 * C, 1, groups=C)
            self.sf = nn.Conv2d(width, 2 * C, 1, bias=False)     # linear skip from the features
            self.sv = nn.Parameter(torch.zeros(2 * C, C))        # linear skip from the earlier channels
            self.register_buffer("smask", torch.tril(torch.ones(C, C), -1).repeat_interleave(2, 0))

        def forward(self, x, v):
            f = torch.relu(self.c2(torch.relu(self.c1(torch.relu(self.c0(x / IN_SCALE))))))
            v = v / IN_SCALE
            h = torch.relu(self.hf(f) + torch.einsum("kc,nchw->nkhw", self.hv * self.mask, v))
            o = self.out(h) + self.sf(f) + torch.einsum("kc,nchw->nkhw", self.sv * self.smask, v)
            return o[:, 0::2] * IN_SCALE, o[:, 1::2]

        def params(self) -> dict:
            d = lambda t: t.detach().cpu().double().numpy()
            return {"w0": d(self.c0.weight), "b0": d(self.c0.bias), "w1": d(self.c1.weight), "b1": d(self.c1.bias),
                    "w2": d(self.c2.weight), "b2": d(self.c2.bias), "hf": d(self.hf.weight)[:, :, 0, 0],
                    "hfb": d(self.hf.bias), "hv": d(self.hv * self.mask),
                    "ow": d(self.out.weight)[:, :, 0, 0].reshape(C, 2, head), "ob": d(self.out.bias).reshape(C, 2),
                    "sf": d(self.sf.weight)[:, :, 0, 0].reshape(C, 2, width),
                    "sv": d(self.sv * self.smask).reshape(C, 2, C)}

    return FloatNet()


def _laplace_bits(mu, ls, y):
    import torch

    b = torch.exp(ls.clamp(LS_MIN, LS_MIN + NBINS / LS_PER_UNIT))

    def cdf(v):
        return 0.5 + 0.5 * torch.sign(v - mu) * (1 - torch.exp(-(v - mu).abs() / b))

    return -torch.log2((cdf(y + 0.5) - cdf(y - 0.5)).clamp_min(1e-9))


def _subsampled(x: np.ndarray, lev: int) -> list[np.ndarray]:
    """Training views of pyramid level ``lev`` of a latent: coding sees the (0, 0) polyphase component of each
    halving, and the other three components have the same statistics, so all 4**lev are used (4**lev times the
    data the coarser levels would otherwise have)."""
    views = [x]
    for _ in range(lev):
        views = [v[..., dy::2, dx::2] for v in views for dy in (0, 1) for dx in (0, 1)]
    return views


def train_nets(latents, levels: int = 2, width: int = 48, head: int = 16, steps: int = 8000, batch: int = 8,
               lr: float = 2e-3, seed: int = 0, log=None, workers: int = 1) -> list[list[IntNet]]:
    """Train the (level, phase) networks on training latents (a list of (C, H, W) integer arrays) by the
    Laplace negative log-likelihood of the values, ``steps`` Adam steps each (lr / 4 for the last quarter), and
    round them to :class:`IntNet`. Latents of one shape are batched together. Each network trains on one CPU
    thread from its own seed, so the result does not depend on ``workers`` (processes training networks at once).
    """
    latents = [np.asarray(x, dtype=np.int32) for x in latents]
    jobs = [(lev, ph) for lev in range(levels) for ph in range(3)]
    args = (width, head, steps, batch, lr, seed)
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        flat = [_train_job(latents, lev, ph, args, log) for lev, ph in jobs]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_train_job, latents, lev, ph, args, None) for lev, ph in jobs]
            flat = []
            for (lev, ph), f in zip(jobs, futs):
                flat.append(f.result())
                if log:
                    log(f"neural context level {lev} phase {ph}: trained")
    return [flat[3 * lev:3 * lev + 3] for lev in range(levels)]


def _train_job(latents, lev, ph, args, log):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_one(latents, lev, ph, *args, log=log)
    finally:
        torch.set_num_threads(threads)


def train_one(latents, lev: int, ph: int, width: int = 48, head: int = 16, steps: int = 8000, batch: int = 8,
              lr: float = 2e-3, seed: int = 0, log=None) -> IntNet:
    """The network of one (level, phase) (see :func:`train_nets`; independent of the others, so they can be
    trained in parallel)."""
    import torch

    torch.manual_seed(seed + 7 * lev + ph)
    rng = np.random.default_rng(seed + 7 * lev + ph)
    C = int(latents[0].shape[0])
    groups: dict = {}
    for x0 in latents:
        for x in _subsampled(np.asarray(x0, dtype=np.int64), lev):
            if min(x.shape[-2:]) < 2:
                continue
            tgt = x[_target_slice(ph)]
            inp = _phase_inputs(x[None], ph)[0]
            full = np.zeros((C,) + inp.shape[-2:], dtype=np.int64)
            full[:, :tgt.shape[-2], :tgt.shape[-1]] = tgt
            m = np.zeros(inp.shape[-2:], dtype=bool)
            m[:tgt.shape[-2], :tgt.shape[-1]] = True
            groups.setdefault(inp.shape, []).append((inp, full, m))
    if not groups:
        raise EntropyError(f"no training latent is large enough for pyramid level {lev}")
    data = [tuple(torch.from_numpy(np.stack(z)).float() for z in zip(*g)) for g in groups.values()]
    sizes = np.array([len(d[0]) for d in data], dtype=np.float64)
    with torch.enable_grad():
        net = _float_net((1 + ph) * C, C, width, head)
        opt = torch.optim.Adam(net.parameters(), lr)
        for step in range(steps):
            if step == (3 * steps) // 4:
                for g in opt.param_groups:
                    g["lr"] = lr / 4
            X, Y, M = data[rng.choice(len(data), p=sizes / sizes.sum())]
            idx = torch.from_numpy(rng.integers(len(X), size=batch))
            x, y, m = X[idx], Y[idx], M[idx][:, None]
            bits = _laplace_bits(*net(x, y), y)
            loss = (bits * m).sum() / (m.sum() * C)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if log and (step + 1) % 1000 == 0:
                log(f"neural context level {lev} phase {ph}: step {step + 1}/{steps}, {loss.item():.3f} bits/value")
    return IntNet.from_float(net.params())


