"""WaLLoC: packet transform, context model, Codec2D / Codec1D coding, training through fit.py, export, API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pywt
import torch

from codec.codecs.wavelet import Codec1D, Codec2D, WaveletPacket
from codec.entropy import CdfTables, encode
from codec.entropy.context import ContextModel
from codec.errors import BitstreamError, CheckpointError, CodecError, EntropyError

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------------- transform
@pytest.mark.parametrize("wavelet", ["bior4.4", "db4", "haar"])
def test_packet_transform_matches_pywavelets_and_inverts(wavelet):
    x = torch.randn(2, 3, 64, 32, dtype=torch.float64)
    X = WaveletPacket(1, 2, wavelet).analysis(x)
    cA, (cH, cV, cD) = pywt.dwt2(x.numpy(), wavelet, mode="periodization")
    for k, ref in enumerate([cA, cV, cH, cD]):  # band 2a+b: a vertical, b horizontal
        np.testing.assert_allclose(X[:, k::4].numpy(), ref, atol=1e-12)
    # level 2 is a full packet: every subband split again (16 bands = pywt's WaveletPacket2D level 2)
    wp = pywt.WaveletPacket2D(x[0, 0].numpy(), wavelet, mode="periodization", maxlevel=2)
    X2 = WaveletPacket(2, 2, wavelet).analysis(x)[0, :16].numpy()
    nodes = [n.data for n in wp.get_level(2)]
    assert all(any(np.allclose(X2[i], d, atol=1e-12) for d in nodes) for i in range(16))
    # 1D: matches pywt.dwt, and J levels invert to float precision in 1D and 2D, float64 and float32
    x1 = torch.randn(2, 2, 512, dtype=torch.float64)
    a, d = pywt.dwt(x1.numpy(), wavelet, mode="periodization")
    X1 = WaveletPacket(1, 1, wavelet).analysis(x1)
    np.testing.assert_allclose(X1[:, 0::2].numpy(), a, atol=1e-12)
    np.testing.assert_allclose(X1[:, 1::2].numpy(), d, atol=1e-12)
    for t, sig in ((WaveletPacket(3, 2, wavelet), x), (WaveletPacket(8, 1, wavelet), x1)):
        Y = t.analysis(sig)
        assert Y.shape[1] == t.channels(sig.shape[1]) and Y.shape[2:] == tuple(s // t.factor for s in sig.shape[2:])
        assert (t.synthesis(Y) - sig).abs().max() < 1e-9
        assert (t.synthesis(t.analysis(sig.float())) - sig.float()).abs().max() < 1e-5


def test_packet_transform_refuses_bad_sizes():
    with pytest.raises(CodecError, match="multiples"):
        WaveletPacket(3, 2).analysis(torch.zeros(1, 3, 12, 16))
    with pytest.raises(CodecError, match="unknown wavelet"):
        WaveletPacket(1, 1, "nope")


# --------------------------------------------------------------------------------------------------- context
@pytest.mark.parametrize("shape,ndim", [((2, 3, 13, 7), 2), ((1, 2, 37), 1), ((1, 3, 1, 1), 2), ((1, 2, 2, 9), 2),
                                        ((1, 1, 1), 1), ((1, 4, 64, 48), 2)])
@pytest.mark.parametrize("cross", [0, 3])
def test_context_model_roundtrip_with_escapes(shape, ndim, cross):
    rng = np.random.default_rng(0)
    m = ContextModel(shape[1], ndim, radius=127, cross=cross)
    s = rng.integers(-130, 131, size=shape)  # some values outside +-127: escape-coded, never clipped
    t = m.tables(m.count(np.clip(s, -127, 127)))
    assert np.array_equal(m.decode(m.encode(s, t), shape, t), s)


def test_cross_channel_context_uses_the_earlier_channels():
    """Latents whose channels share where they are hard to predict (noise bursts at the same positions in every
    channel): the cross-channel context codes them in fewer bytes than the spatial context alone, with the same
    number of tables, and decodes exactly."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:64, 0:96]

    def latents(phase):
        burst = (rng.random((64, 96)) < 0.3) * 10
        return np.stack([np.round(30 * np.sin(xx / 11 + c + phase) * np.cos(yy / 9 + phase) +
                                  rng.normal(0, 1 + burst, xx.shape)) for c in range(12)])[None].astype(np.int64)

    lat, train = latents(0.0), latents(0.5)
    sizes = {}
    for cross in (0, 3):
        m = ContextModel(12, 2, radius=127, cross=cross)
        t = m.tables(m.count(train))
        assert t.num_tables == ContextModel(12, 2, radius=127).num_tables
        data = m.encode(lat, t)
        assert np.array_equal(m.decode(data, lat.shape, t), lat)
        sizes[cross] = len(data)
    assert sizes[3] < 0.985 * sizes[0], sizes  # measured: 2.7 % smaller
    # plus least-squares cross-channel prediction: channels that are mixtures of each other
    a = rng.normal(0, 1, (12, 12)) / 3
    mix = np.einsum("cd,ndhw->nchw", a, lat).round().astype(np.int64)
    mix_train = np.einsum("cd,ndhw->nchw", a, train).round().astype(np.int64)
    m = ContextModel(12, 2, radius=127, cross=3)
    t = m.tables(m.count(mix_train))
    plain = len(m.encode(mix, t))
    w = m.fit_weights([mix_train])
    assert w.shape == (4, 3, 12, 12) and not np.triu(w).any() and w.any()
    t = m.tables(m.count(mix_train))
    data = m.encode(mix, t)
    assert np.array_equal(m.decode(data, mix.shape, t), mix)
    assert len(data) < plain, (len(data), plain)
    with pytest.raises(EntropyError, match="lower triangular"):
        m.set_weights(np.ones((4, 3, 12, 12), dtype=np.int64))
    with pytest.raises(EntropyError, match="cross"):
        ContextModel(2, 2, radius=127, cross=-1)


def test_context_model_beats_a_per_channel_histogram_on_correlated_latents():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:96]
    lat = np.stack([np.round(60 * np.sin(xx / 9 + c) * np.cos(yy / 7) + rng.normal(0, 3, xx.shape))
                    for c in range(4)])[None].astype(np.int64)
    m = ContextModel(4, 2, radius=127)
    ctx = len(m.encode(lat, m.tables(m.count(lat))))
    iid = CdfTables.from_counts(np.stack([np.bincount(lat[0, c].ravel() + 127, minlength=255) for c in range(4)]),
                                offsets=-127)
    flat = len(encode(lat[0], np.broadcast_to(np.arange(4)[:, None, None], lat[0].shape), iid))
    assert ctx < 0.75 * flat


def test_context_model_rejects_corrupt_data():
    m = ContextModel(2, 2, radius=127)
    s = np.zeros((1, 2, 8, 8), dtype=np.int64)
    t = m.tables(m.count(s))
    data = bytearray(m.encode(s + 3, t))
    data[-1] ^= 0xFF
    with pytest.raises(EntropyError):
        m.decode(bytes(data), s.shape, t)
    with pytest.raises(EntropyError):
        m.decode(bytes(data[:4]), s.shape, t)


# --------------------------------------------------------------------------------------------------- neural context
def _smooth_latents(rng, n, h=32, w=48, C=4, noise=1.0):
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        ph = rng.uniform(0, 6)
        base = 40 * np.sin(xx / 7 + ph) * np.cos(yy / 5 + ph / 2)
        out.append(np.stack([np.round(base * (1 - 0.2 * c) + 5 * c + rng.normal(0, noise, base.shape))
                             for c in range(C)]).astype(np.int64))
    return out


@pytest.fixture(scope="module")
def tiny_neural():
    from codec.entropy import neural, neural_train

    rng = np.random.default_rng(0)
    train = _smooth_latents(rng, 6)
    base = ContextModel(4, 2, radius=127, cross=3)
    nets = neural_train.train_nets(train, levels=2, width=16, head=4, steps=1000, batch=4)
    nc = neural.NeuralContext(base, nets, min_side=1)  # the networks on every shape, however small
    bc = sum(base.count(x[None]) for x in train)
    t = nc.tables(bc, sum(nc.count(x[None]) for x in train), smoothing=0.1)
    return nc, t, base, base.tables(bc, smoothing=0.1), rng


@pytest.mark.parametrize("shape", [(1, 4, 32, 48), (1, 4, 13, 7), (1, 4, 1, 1), (1, 4, 2, 9), (1, 4, 5, 3),
                                   (1, 4, 13, 25)])
def test_neural_context_roundtrip_with_escapes(tiny_neural, shape):
    nc, t, *_ = tiny_neural
    rng = np.random.default_rng(1)
    s = rng.integers(-140, 141, size=shape)  # values beyond +-127 are escape-coded, never clipped
    assert np.array_equal(nc.decode(nc.encode(s, t), shape, t), s)


def test_neural_context_leaves_small_latents_to_the_context_model(tiny_neural):
    from codec.entropy import neural

    nc, t, base, *_ = tiny_neural
    dflt = neural.NeuralContext(base, nc.nets)
    assert dflt.min_side == neural.MIN_SIDE == 12
    rng = np.random.default_rng(2)
    small = rng.integers(-20, 21, size=(1, 4, 11, 40))  # shorter side under 12: the context model's stream exactly
    assert dflt.encode(small, t) == base.encode(small, t) != nc.encode(small, t)
    assert np.array_equal(dflt.decode(dflt.encode(small, t), small.shape, t), small)
    big = rng.integers(-20, 21, size=(1, 4, 12, 40))
    assert dflt.encode(big, t) == nc.encode(big, t) != base.encode(big, t)


def test_neural_context_codes_smooth_latents_in_fewer_bytes_than_the_context_model(tiny_neural):
    nc, t, base, bt, rng = tiny_neural
    lat = _smooth_latents(rng, 1)[0][None]
    data = nc.encode(lat, t)
    assert np.array_equal(nc.decode(data, lat.shape, t), lat)
    assert len(data) < 0.95 * len(base.encode(lat, bt)), (len(data), len(base.encode(lat, bt)))  # measured 0.87


def test_neural_context_integer_network_is_exact(tiny_neural):
    """The float64 evaluation of the integer network equals a pure int64 evaluation bit for bit (every sum is
    an exact integer), so encoder and decoder agree on any platform."""
    from codec.entropy import neural

    nc, *_ = tiny_neural
    net = nc.nets[0][2]
    x = np.random.default_rng(3).integers(-127, 128, (2, net.cin, 9, 11))

    def conv_int(x, w):
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = sum(np.einsum("nchw,oc->nhwo", xp[:, :, ky:ky + x.shape[2], kx:kx + x.shape[3]], w[:, :, ky, kx])
                  for ky in range(3) for kx in range(3))
        return out

    def requant(a):
        return np.clip((a + (1 << (neural.Q_BITS - 1))) >> neural.Q_BITS, 0, neural.LIMIT)

    r = {k: v.astype(np.int64) for k, v in net.raw.items()}
    h = requant(conv_int(x * ((1 << neural.A_BITS) // neural.IN_SCALE), r["w0"]) + r["b0"])
    h = requant(conv_int(h.transpose(0, 3, 1, 2), r["w1"]) + r["b1"])
    h = requant(conv_int(h.transpose(0, 3, 1, 2), r["w2"]) + r["b2"])
    f = net.trunk(x)
    assert f.dtype == np.float64 and np.array_equal(f.astype(np.int64), h) and np.all(f == np.round(f))
    vals = np.random.default_rng(4).integers(-127, 128, (2, net.C, 9, 11))
    c, hd = 3, net.head
    v = vals[:, :c].transpose(0, 2, 3, 1) * ((1 << neural.A_BITS) // neural.IN_SCALE)
    hid = requant(h @ r["hf"][c * hd:(c + 1) * hd].T + r["hfb"][c * hd:(c + 1) * hd] + v @ r["hv"][c * hd:(c + 1) * hd, :c].T)
    out = hid @ r["ow"][c].T + h @ r["sf"][c].T + v @ r["sv"][c, :, :c].T + r["ob"][c]  # hidden units + linear skip
    mu, ls = net.head_out(f, vals, c)
    assert np.array_equal(mu.astype(np.int64), out[..., 0]) and np.array_equal(ls.astype(np.int64), out[..., 1])
    assert np.any(r["sv"]) and np.any(r["sf"])  # the skip is trained, not left at zero


def test_neural_context_training_views_and_workers():
    """Coarser levels train on every polyphase view of the latent; the trained networks do not depend on how many
    processes train them."""
    from codec.entropy import neural, neural_train

    x = np.arange(2 * 8 * 12).reshape(2, 8, 12)
    views = neural_train._subsampled(x, 2)
    assert len(views) == 16 and all(v.shape == (2, 2, 3) for v in views)
    assert np.array_equal(views[0], x[:, 0::4, 0::4]) and np.array_equal(views[-1], x[:, 3::4, 3::4])
    assert np.array_equal(np.sort(np.concatenate([v.ravel() for v in views])), np.sort(x.ravel()))
    lat = _smooth_latents(np.random.default_rng(5), 2, h=16, w=20, C=2)
    a = neural_train.train_nets(lat, levels=1, width=4, head=2, steps=5, batch=2, workers=1)
    b = neural_train.train_nets(lat, levels=1, width=4, head=2, steps=5, batch=2, workers=2)
    assert all(np.array_equal(a[0][p].raw[k], b[0][p].raw[k]) for p in range(3) for k in neural.PARAMS)


def test_neural_context_refuses_bad_networks(tiny_neural):
    from codec.entropy import neural

    nc, *_ = tiny_neural
    raw = dict(nc.nets[0][0].raw)
    bad = dict(raw, hv=np.ones_like(raw["hv"]))  # a head that would see channels not decoded yet
    with pytest.raises(EntropyError, match="earlier channels"):
        neural.IntNet(bad)
    with pytest.raises(EntropyError, match="earlier channels"):  # ... or a skip that would
        neural.IntNet(dict(raw, sv=np.ones_like(raw["sv"])))
    with pytest.raises(EntropyError, match="shape"):
        neural.IntNet(dict(raw, w1=raw["w1"][:, :2]))
    with pytest.raises(EntropyError, match="integer"):
        neural.IntNet(dict(raw, b0=raw["b0"].astype(np.float32)))
    with pytest.raises(EntropyError, match="bound"):
        neural.IntNet(dict(raw, b0=raw["b0"] + (1 << 22)))
    with pytest.raises(EntropyError, match="missing"):
        neural.nets_from_arrays({}, 1)


# --------------------------------------------------------------------------------------------------- codecs
def _tiny(cls, **kw):
    torch.manual_seed(0)
    args = dict(J=2, latent_dim=4, decoder_width=16, decoder_blocks=1)
    args.update(kw)
    m = cls(**args)
    if cls is Codec2D:
        x = torch.rand(4, 3, 32, 32)
    else:
        x = torch.rand(4, 2, 512) * 2 - 1
    m.update_prior(m.encode_latent(m.pad(m.to_model(x))))
    return m.eval()


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (33, 20), (16, 16)])
def test_codec2d_codes_any_size(size):
    m = _tiny(Codec2D)
    m.freeze_tables()
    x = torch.rand(1, 3, *size)
    payload, sym = m._compress(x)
    x_hat, sym2 = m._decompress(payload)
    assert x_hat.shape == x.shape and np.array_equal(sym[0], sym2[0])
    assert 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1
    # the reconstruction is what the network gives on the rounded latents
    with torch.no_grad():
        ref = m(m.to_model(m.pad(x)))["x_hat"] + 0.5
    torch.testing.assert_close(x_hat, ref[..., : size[0], : size[1]], atol=1e-5, rtol=0)
    assert m.reduction() == 3 * 16 / 4


def test_codec_refuses_bad_payloads_and_inputs():
    m = _tiny(Codec2D)
    m.freeze_tables()
    payload = m.compress(torch.rand(1, 3, 8, 8))
    from codec.bitstream import Payload

    with pytest.raises(BitstreamError):
        m.decompress(Payload(streams={}, ints={"size": (8, 8)}))
    with pytest.raises(BitstreamError):
        m.decompress(Payload(streams=payload.streams, ints={"size": (0, 8)}))
    with pytest.raises(CodecError):
        m.compress(torch.rand(1, 1, 8, 8))
    untrained = Codec2D(J=1, latent_dim=2, decoder_width=8, decoder_blocks=1)
    from codec.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no counts"):
        untrained.freeze_tables()


def test_codec1d_long_signals_are_coded_in_chunks_without_seams():
    """Chunked analysis/synthesis (bounded memory) agrees with coding the whole signal at once: the margins
    cover the filters' support, so the latents are the same and the waveform has no seam at chunk edges."""
    m = _tiny(Codec1D, J=3, chunk=16, margin=16)
    m.freeze_tables()
    t = 8 * 16 * 5 + 3  # five chunks and a ragged end
    x = (torch.sin(torch.arange(t) / 7.0) * 0.5).repeat(2, 1)[None] + 0.01 * torch.randn(1, 2, t)
    whole = Codec1D(**{k: v for k, v in m.config().items() if k != "class"} | {"chunk": 10 ** 6})
    whole.load_state_dict(m.state_dict())
    whole.eval()
    s_chunk, s_whole = m.latent_symbols(x), whole.latent_symbols(x)
    assert (s_chunk == s_whole).mean() > 0.999
    payload, sym = m._compress(x)
    x_hat, sym2 = m._decompress(payload)
    assert x_hat.shape == x.shape and np.array_equal(sym[0], sym2[0])
    d = (x_hat[..., 1:] - x_hat[..., :-1]).abs()
    edges = torch.tensor([8 * 16 * k - 1 for k in range(1, 5)])
    assert float(d[..., edges].max()) <= float(torch.quantile(d.flatten(), 0.999)) + 1e-6
    # everything but the attention block is local (per-position norms, margins wider than the receptive field):
    # without attention, the chunked decode equals the whole-signal decode
    for net in (m, whole):
        torch.nn.init.zeros_(net.decoder[2].out.weight)
        torch.nn.init.zeros_(net.decoder[2].out.bias)
    s0 = torch.from_numpy(sym[0].astype(np.float32))
    torch.testing.assert_close(m.decode_symbols(s0), whole.decode_symbols(s0), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    from conftest import write_image_folders

    return write_image_folders(tmp_path_factory.mktemp("wimgs"), {"train": 4, "val": 2}, (8, 8))


def _fit(config: str, run: Path, *extra, steps: int = 2):
    cmd = [sys.executable, str(ROOT / "train" / "fit.py"), "fit", "--config", str(ROOT / "train" / "configs" / config),
           f"--trainer.max_steps={steps}", f"--trainer.default_root_dir={run}",
           f"--trainer.logger.init_args.save_dir={run}", "--trainer.val_check_interval=2",
           "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
           "--trainer.callbacks.init_args.dirpath=" + str(run / "checkpoints"),
           "--trainer.callbacks.init_args.every_n_train_steps=1", *extra]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return run / "checkpoints" / "last.ckpt"


def test_fit_export_and_code_an_image(image_folders, tmp_path):
    from codec.api import decode, encode_image
    from codec.checkpoints import load_checkpoint_file
    from codec.export import export

    ck = _fit("walloc-rgb16x.yaml", tmp_path / "run", "--model.codec.init_args.J=2", "--model.codec.init_args.latent_dim=6",
              "--model.codec.init_args.decoder_width=16", "--model.codec.init_args.decoder_blocks=1",
              "--model.codec.init_args.context_nn={levels: 1, width: 4, head: 2, steps: 20}",
              f"--data.init_args.train_dirs=[{image_folders / 'train'}]",
              f"--data.init_args.val_dir={image_folders / 'val'}", "--data.init_args.crop_size=32",
              "--data.init_args.batch_size=2", "--data.init_args.val_crop_size=32", "--data.init_args.repeats=1")
    (tmp_path / "out").mkdir()
    e = export(ck, tmp_path / "out" / "w-tiny.pt")
    assert e["modality"] == "image" and e["training"]["steps"] == 2 and e["training"]["loss"] == "mse"
    shipped = torch.load(tmp_path / "out" / "w-tiny.pt", weights_only=True)
    assert "prior_counts" not in shipped["state_dict"] and set(shipped["tables"]) == {"latent"}
    assert e["config"]["context_cross"] == 3  # the config's cross-channel context travels into the export
    # the config's neural context model is fitted at export on the training images the checkpoint records
    assert e["config"]["context_nn"]["levels"] == 1 and "neural context model" in e["training"]["prior"]
    model = load_checkpoint_file(tmp_path / "out" / "w-tiny.pt")
    img = np.random.default_rng(0).integers(0, 256, (19, 23, 3), dtype=np.uint8)
    assert decode(encode_image(img, model), model).shape == img.shape
    # refit the shipped file's context prior with new settings on the training images it records
    e2 = export(tmp_path / "out" / "w-tiny.pt", tmp_path / "out" / "w-tiny-c0.pt",
                prior={"context_cross": 0})
    assert e2["config"].get("context_cross", 0) == 0 and "4 whole images" in e2["training"]["prior"]
    m2 = load_checkpoint_file(tmp_path / "out" / "w-tiny-c0.pt")
    assert m2.context.cross == 0 and decode(encode_image(img, m2), m2).shape == img.shape
    # the neural context model: trained on the recorded training images (and extra ones) at export, shipped as
    # integer networks
    e3 = export(tmp_path / "out" / "w-tiny.pt", tmp_path / "out" / "w-tiny-nn.pt",
                prior={"context_nn": {"levels": 2, "width": 4, "head": 2, "steps": 20,
                                      "data": [str(image_folders / "val")]}})
    assert e3["config"]["context_nn"]["width"] == 4 and "neural context model" in e3["training"]["prior"]
    assert "6 whole images" in e3["training"]["prior"] and str(image_folders / "val") in e3["training"]["prior"]
    with pytest.raises(CodecError, match="list of image folders"):
        export(tmp_path / "out" / "w-tiny.pt", tmp_path / "out" / "bad.pt",
               prior={"context_nn": {"levels": 1, "data": "data:images"}})
    shipped = torch.load(tmp_path / "out" / "w-tiny-nn.pt", weights_only=True)
    assert shipped["state_dict"]["cnn_l0p0_w0"].dtype == torch.int32 and "nn_prior_counts" not in shipped["state_dict"]
    m3 = load_checkpoint_file(tmp_path / "out" / "w-tiny-nn.pt")
    assert m3.neural is not None and m3.coder is m3.neural
    assert np.array_equal(decode(encode_image(img, m3), m3), decode(encode_image(img, m2), m2))  # same latents
    shipped["state_dict"]["cnn_l0p1_hv"] = torch.ones_like(shipped["state_dict"]["cnn_l0p1_hv"])
    torch.save(shipped, tmp_path / "out" / "bad-nn.pt")
    with pytest.raises(CheckpointError, match="neural context"):
        load_checkpoint_file(tmp_path / "out" / "bad-nn.pt")
    with pytest.raises(CheckpointError, match="unknown context-prior settings"):
        export(tmp_path / "out" / "w-tiny.pt", tmp_path / "out" / "bad.pt",
               prior={"prior_contexts": 3})


def test_fit_audio_data_module_and_code_audio(tmp_path):
    import soundfile as sf

    from codec.api import decode, encode_audio
    from codec.checkpoints import load_checkpoint_file
    from codec.export import export

    sr = 8000
    t = np.arange(sr * 2) / sr
    for name, f0 in (("a", 220), ("b", 330), ("v", 440)):
        sig = np.stack([np.sin(2 * np.pi * f0 * t), np.sin(2 * np.pi * f0 * 1.5 * t)], 1) * 0.3
        sf.write(tmp_path / f"{name}.wav", sig.astype(np.float32), sr)
    ck = _fit("walloc-stereo.yaml", tmp_path / "run", "--model.codec.init_args.J=4", "--model.codec.init_args.latent_dim=8",
              "--model.codec.init_args.decoder_width=16", "--model.codec.init_args.decoder_blocks=1",
              "--model.codec.init_args.sample_rate=16000",
              f"--data.init_args.train=[{tmp_path / 'a.wav'},{tmp_path / 'b.wav'}]",
              f"--data.init_args.val=[{tmp_path / 'v.wav'}]", "--data.init_args.sample_rate=16000",
              "--data.init_args.excerpt=2048", "--data.init_args.batch_size=2",
              "--data.init_args.val_excerpt=4096", "--data.init_args.val_count=2", "--data.init_args.val_batch_size=2")
    (tmp_path / "out").mkdir()
    e = export(ck, tmp_path / "out" / "a-tiny.pt")
    assert e["modality"] == "audio" and e["training"]["sample_rate"] == 16000
    model = load_checkpoint_file(tmp_path / "out" / "a-tiny.pt")
    for channels in (2, 1):  # stereo, and mono (duplicated into the stereo model and mixed back)
        sig = np.random.default_rng(channels).uniform(-0.5, 0.5, (12345, channels)).astype(np.float32)
        out, rate = decode(encode_audio(sig, 22050, model), model)
        assert rate == 22050 and out.shape == sig.shape
    three = np.random.default_rng(3).uniform(-0.5, 0.5, (3000, 3)).astype(np.float32)  # pairs: (0, 1), (2, 2)
    out, rate = decode(encode_audio(three, 16000, model), model)
    assert rate == 16000 and out.shape == three.shape


def test_audio_data_module_keeps_held_out_files_out(tmp_path):
    import soundfile as sf

    from codec.errors import MediaError
    from codec.train.data import AudioFolderData

    sf.write(tmp_path / "x.wav", np.zeros((4000, 1), np.float32), 8000)
    dm = AudioFolderData(train=[str(tmp_path / "x.wav")], val=[str(tmp_path / "x.wav")], sample_rate=8000,
                         channels=1, excerpt=256)
    with pytest.raises(MediaError, match="held-out"):
        dm.setup()
    dm = AudioFolderData(train=[str(tmp_path / "nothing*.wav")], val=[str(tmp_path / "x.wav")])
    with pytest.raises(MediaError, match="no audio"):
        dm.setup()
