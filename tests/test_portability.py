"""Portable bitstreams: exact integer entropy parameters (codec.entropy.intnet), cross-backend decoding, divergence
errors, devices.

The cross-process check encodes in this process and decodes in fresh processes with oneDNN disabled and with another
thread count (a subset of Kodak at qualities 1, 4, 7 and one video clip here; all of Kodak and every clip with
--runslow). Before the hyper-synthesis was exact, most of these files failed to decode with oneDNN disabled.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from codec.entropy import intnet
from codec.errors import CodecError, DivergenceError


# --------------------------------------------------------------------------------------------------------------
# the integer network
# --------------------------------------------------------------------------------------------------------------
def _int_reference(stack: intnet.IntStack, x: np.ndarray) -> np.ndarray:
    """The same network in int64 numpy with explicit loops over the kernel (no float anywhere)."""
    x = x.astype(np.int64)
    for lay in stack.layers:
        w, b = lay["w"].numpy().astype(np.int64), lay["b"].numpy().astype(np.int64)
        bound = int(lay["bound"])
        x = np.clip(x, -bound, bound)
        (sh, sw), (ph, pw), (dh, dw) = lay["stride"], lay["padding"], lay["dilation"]
        if lay["transposed"]:  # zero-stuff, pad k-1-p (+ output padding), flipped and transposed kernel
            n, c, h, wd = x.shape
            st = np.zeros((n, c, (h - 1) * sh + 1, (wd - 1) * sw + 1), dtype=np.int64)
            st[..., ::sh, ::sw] = x
            k0, k1 = w.shape[2:]
            oph, opw = lay["output_padding"]
            x = np.pad(st, ((0, 0), (0, 0), (dh * (k0 - 1) - ph, dh * (k0 - 1) - ph + oph),
                            (dw * (k1 - 1) - pw, dw * (k1 - 1) - pw + opw)))
            w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
            sh = sw = 1
        else:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        co, ci, k0, k1 = w.shape
        ho = (x.shape[2] - dh * (k0 - 1) - 1) // sh + 1
        wo = (x.shape[3] - dw * (k1 - 1) - 1) // sw + 1
        acc = np.zeros((x.shape[0], co, ho, wo), dtype=np.int64) + b.reshape(1, -1, 1, 1)
        for ky in range(k0):
            for kx in range(k1):
                patch = x[:, :, ky * dh: ky * dh + sh * (ho - 1) + 1: sh, kx * dw: kx * dw + sw * (wo - 1) + 1: sw]
                acc += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
        q = stack.q_bits
        x = (acc + (1 << (q - 1))) >> q
        if lay["act"] == "relu":
            x = np.maximum(x, 0)
        elif lay["act"] == "leaky":
            x = np.where(x >= 0, x, (x * lay["slope"]) >> 16)
    return x


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.ConvTranspose2d(6, 8, 5, 2, 2, 1), nn.LeakyReLU(0.01), nn.Conv2d(8, 8, 3, 1, 2, 2),
                         nn.ReLU(), nn.ConvTranspose2d(8, 5, 3, 2, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(5, 4, 3, 1, 1))


def test_intstack_is_the_integer_network_and_close_to_the_float_one():
    net = _net()
    stack = intnet.IntStack.from_modules(net)
    x = torch.randn(2, 6, 5, 7) * 8
    xi = intnet.to_fixed(x)
    out = stack(xi)
    assert torch.equal(out, torch.from_numpy(_int_reference(stack, xi.numpy()).astype(np.float64)))
    with torch.no_grad():
        ref = net(x)
    err = (out / (1 << intnet.A_BITS) - ref.double()).abs().max()
    assert float(err) < 0.02 * float(ref.abs().max())


def test_intstack_same_bits_under_other_kernels_and_threads():
    stack = intnet.IntStack.from_modules(_net(1))
    xi = intnet.to_fixed(torch.randn(1, 6, 9, 11) * 20)
    ref = stack(xi)
    threads, mk = torch.get_num_threads(), torch.backends.mkldnn.enabled
    try:
        torch.backends.mkldnn.enabled = not mk
        torch.set_num_threads(1)
        assert torch.equal(stack(xi), ref)
        assert torch.backends.mkldnn.enabled == (not mk)  # the caller's setting is restored
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mk


def test_intstack_refuses_what_it_cannot_make_exact():
    with pytest.raises(CodecError, match="cannot compile"):
        intnet.IntStack.from_modules(nn.Sequential(nn.Conv2d(2, 2, 3), nn.Sigmoid()))
    with pytest.raises(CodecError, match="grouped ones not transposed"):
        intnet.IntStack.from_modules(nn.ConvTranspose2d(2, 2, 3, groups=2))
    with pytest.raises(CodecError, match="zero-padded"):
        intnet.IntStack.from_modules(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    big = nn.Conv2d(4, 4, 3)
    with torch.no_grad():
        big.weight.fill_(1e9)
    with pytest.raises(CodecError, match="too large"):
        intnet.IntStack.from_modules(big)


def test_fixed_point_functions():
    x = torch.tensor([1, 2, 3, 5, 450, 4096, 12345, 2 ** 40])
    lg = intnet.ilog2(x).double() / (1 << intnet.LOG_BITS)
    assert torch.allclose(lg, torch.log2(x.double()), atol=2e-4)
    t = torch.linspace(-20, 20, 401)
    e = intnet.exp2(intnet.to_fixed(t, intnet.LOG_BITS)).double() / (1 << 30)
    assert torch.allclose(e, torch.exp2(t.double()), rtol=1e-4, atol=2e-9)
    v = torch.linspace(-10, 10, 201)
    s = intnet.sigmoid(intnet.to_fixed(v)).double() / (1 << 16)
    assert torch.allclose(s, torch.sigmoid(v.double()), atol=1e-4)
    assert bool((s[1:] >= s[:-1]).all())


def test_scale_indexes_are_compressais_build_indexes():
    """On scales that are exact in float (multiples of 2**-12), the integer table choice is CompressAI's."""
    from codec.entropy.models import GaussianConditional

    gc = GaussianConditional(None)
    thr = intnet.scale_thresholds(gc.scale_table)
    s_int = torch.cat([torch.arange(-5, 9000), torch.randint(9000, 1 << 21, (20000,)), thr, thr + 1, thr - 1])
    ours = intnet.scale_indexes(s_int, thr)
    theirs = gc.build_indexes((s_int.double() / (1 << intnet.A_BITS)).float())
    assert torch.equal(ours, theirs.to(torch.int64))
    logs = intnet.ilog2(s_int.clamp_min(1)) - (intnet.A_BITS << intnet.LOG_BITS)
    close = intnet.log_scale_indexes(logs, thr)
    assert float((close - ours).abs().max()) <= 1  # the log form differs only at a threshold's ulp


def test_trace_records_entropy_parameters():
    stack = intnet.IntStack.from_modules(_net())
    xi = intnet.to_fixed(torch.randn(1, 6, 4, 4))
    with intnet.Trace() as a:
        stack(xi)
    with intnet.Trace() as b:
        stack(xi)
    with intnet.Trace() as c:
        stack(xi + 1)
    assert a.count == 1 and a.hexdigest() == b.hexdigest() != c.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# the codecs
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls_name", ["FactorizedPrior", "ScaleHyperprior", "MeanScaleHyperprior"])
def test_every_image_class_decodes_identically_with_onednn_off(cls_name):
    """Any image codec a user trains (here: fresh weights) codes through the exact path; toggling oneDNN (another
    float32 kernel for g_a / g_s / h_a) changes neither the symbols nor the entropy parameters."""
    import codec.codecs.image as image
    from codec.api import decode, encode_image

    torch.manual_seed(3)
    model = getattr(image, cls_name)(N=16, M=24).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.mul_(3)  # spread the scales over many tables
    model.freeze_tables()
    rgb = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    data = encode_image(rgb, model)
    with intnet.Trace() as a:
        out_a = decode(data, model)
    mk = torch.backends.mkldnn.enabled
    try:
        torch.backends.mkldnn.enabled = False
        with intnet.Trace() as b:
            out_b = decode(data, model)
    finally:
        torch.backends.mkldnn.enabled = mk
    assert a.hexdigest() == b.hexdigest() and a.count == b.count
    assert a.count == (0 if cls_name == "FactorizedPrior" else 2)
    assert np.abs(out_a.astype(int) - out_b.astype(int)).max() <= 1  # g_s is float; only the pixels may differ


def test_every_family_decodes_identically_in_other_processes():
    """The CI form of the cross-backend check: 2 Kodak images x qualities 1, 4, 7 (default image family), the
    park_joy clip (default video family), WaLLoC and the hierarchical VAE (qualities 1 and 8) on an image, RVQGAN
    and WaLLoC on speech and music."""
    from codec.eval.portability import OTHER_FAMILIES, OTHER_IMAGE_MODELS, check, summarise

    res = check(images="2", qualities=(1, 4, 7), clips="1", frames=4, log=lambda *_: None)
    lines, ok = summarise(res)
    assert ok, "\n".join(lines)
    assert set(res) == {"onednn-off", "threads-1"}
    assert all(len(v) == 7 + len(OTHER_IMAGE_MODELS) + len(OTHER_FAMILIES) for v in res.values())


@pytest.mark.slow
def test_all_of_kodak_and_every_clip_decode_identically_in_other_processes():
    from codec.eval.portability import check, summarise

    res = check(images="all", qualities=(1, 4, 7), clips="all", frames=8, log=lambda *_: None)
    lines, ok = summarise(res)
    assert ok, "\n".join(lines)
    assert all(sum(k.startswith("img") for k in v) == 72 and sum(k.startswith("vid") for k in v) >= 9
               for v in res.values())


def test_a_diverged_decode_says_so(monkeypatch):
    """A decoder whose entropy parameters differ from the encoder's (here: table indexes shifted, as a foreign
    platform or model would) is reported as a divergence naming the likely causes, never as a picture."""
    from codec.api import decode, encode_image
    from codec.checkpoints import checkpoints_dir, load_checkpoint_file

    model = load_checkpoint_file(checkpoints_dir() / "msh-q4.pt", name="msh-q4")
    rgb = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    data = encode_image(rgb, model)
    orig = model.scale_indexes
    monkeypatch.setattr(model, "scale_indexes", lambda s: np.maximum(orig(s) - 3, 0))
    with pytest.raises(DivergenceError, match=r"diverged from the encoder.*intact.*different model.*platform"):
        decode(data, model)


def test_device_argument():
    from codec.api import place
    from codec.checkpoints import load_model

    model = load_model("msh-q1")
    assert place(model, None) is model and place(model, "cpu") is model
    with pytest.raises(CodecError, match="unknown device|unsupported device"):
        place(model, "abacus")
    if not torch.cuda.is_available():
        with pytest.raises(CodecError, match="no CUDA GPU"):
            place(model, "cuda")


def test_cli_device_error_is_one_line(tmp_path):
    import subprocess
    import sys

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from codec.config import data_path

    src = data_path("images", "kodak", "kodim23.png")
    r = subprocess.run([sys.executable, "-m", "codec", "encode", str(src), "-o", str(tmp_path / "a.cdc"),
                        "--device", "cuda"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no CUDA GPU" in r.stderr
    assert not (tmp_path / "a.cdc").exists()
