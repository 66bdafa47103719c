"""RVQGAN: generator shapes (any length, odd strides, multichannel), RVQ, token prior coding, chunked coding without
seams, GAN training through fit.py (two processes too), export, API and CLI with --kbps."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.codecs.audio import RVQGAN
from codec.entropy.tokens import TokenPrior
from codec.errors import BitstreamError, CheckpointError, CodecError, EntropyError
from conftest import ready_rvqgan

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(channels=1, sample_rate=8000, encoder_dim=4, encoder_rates=[2, 3], decoder_dim=16, n_codebooks=3,
            codebook_size=16, codebook_dim=4, chunk=5, margin=40, prior_contexts=4, mpd_width=2, mrd_width=4)


def _tiny(**kw) -> RVQGAN:
    torch.manual_seed(0)
    return RVQGAN(**dict(TINY, **kw)).eval()


# ------------------------------------------------------------------------------------------------ generator
@pytest.mark.parametrize("length", [1, 5, 6, 7, 61, 500])
def test_output_length_equals_input_length_with_odd_strides(length):
    m = _tiny()
    x = torch.randn(2, 1, length) * 0.1
    with torch.no_grad():
        out = m(x)
    assert out["x_hat"].shape == x.shape
    assert out["codes"].shape == (2, 3, -(-length // 6))
    # each decoder block returns exactly stride x its input length (DAC 1.0.0 loses samples with odd strides)
    z = torch.randn(1, m.latent_dim, 7)
    assert m.decoder(z).shape[-1] == 7 * 6


def test_multichannel_is_coded_jointly():
    m = _tiny(channels=3)
    assert m.encoder.block[0].in_channels == 3 and m.decoder.model[-2].out_channels == 3
    x = torch.randn(1, 3, 120) * 0.1
    with torch.no_grad():
        out = m(x)
    assert out["x_hat"].shape == x.shape and out["codes"].shape == (1, 3, 20)  # one token stream, not per channel
    # changing one channel changes the shared tokens
    y = x.clone()
    y[:, 2] = torch.randn(120) * 0.1
    with torch.no_grad():
        assert not torch.equal(m(y)["codes"], out["codes"])


def test_rvq_codes_decode_to_the_quantised_latent_and_dropout_varies_the_rate():
    m = _tiny()
    z = torch.randn(4, m.latent_dim, 9)
    with torch.no_grad():
        z_q, codes, _, _ = m.quantizer(z)
        assert torch.allclose(m.quantizer.from_codes(codes), z_q, atol=1e-5)
        z2, c2, _, _ = m.quantizer(z, 2)
        assert c2.shape == (4, 2, 9) and torch.allclose(m.quantizer.from_codes(c2), z2, atol=1e-5)
    m.train()
    torch.manual_seed(3)
    x = torch.randn(8, 1, 60) * 0.1
    out = m(x)  # quantizer dropout: half of the batch uses a random prefix of the codebooks
    assert out["x_hat"].shape == x.shape and out["commitment"].item() > 0


def test_kbps_picks_the_number_of_codebooks():
    m = _tiny()  # 8000 / 6 frames/s * 4 bits = 5.33 kbps per codebook
    assert m.kbps(1) == pytest.approx(8000 / 6 * 4 / 1000)
    assert m.codebooks_for_kbps(11) == 2 and m.codebooks_for_kbps(16) == 3
    with pytest.raises(CodecError, match="at least"):
        m.codebooks_for_kbps(1)
    with pytest.raises(CodecError, match="at most 16.00 kbps"):  # never silently capped
        m.codebooks_for_kbps(1000)


# ------------------------------------------------------------------------------------------------ token prior
@pytest.mark.parametrize("mode", ["prev", "coarse"])
@pytest.mark.parametrize("contexts", [0, 1, 4])
def test_token_prior_roundtrip_and_rate(contexts, mode):
    rng = np.random.default_rng(contexts)
    p = TokenPrior(3, 32, contexts, alpha=8.0, mode=mode)
    cmap = p.context_map([rng.normal(size=(32, 4)) for _ in range(3)])
    assert cmap.shape == (3, 32) and cmap.min() >= 0 and cmap.max() < max(contexts, 1)
    # a Markov source: the next code is near the previous one
    codes = np.zeros((3, 400), np.int64)
    for t in range(1, 400):
        codes[:, t] = (codes[:, t - 1] + rng.integers(-2, 3, 3)) % 32
    tables = p.tables(p.count(codes, cmap))
    data = p.encode(codes, cmap, tables)
    assert np.array_equal(p.decode(data, codes.shape, cmap, tables), codes)
    ideal = p.bits(codes, cmap, tables)
    assert len(data) * 8 <= ideal * 1.02 + 200
    if contexts > 1:  # the previous-frame contexts beat 5-bit fixed-length codes on this source
        assert ideal < codes.size * 5 * 0.9


def test_token_prior_contexts_capture_frame_to_frame_dependence():
    rng = np.random.default_rng(0)
    cb = rng.normal(size=(64, 2))
    p0, p8 = TokenPrior(1, 64, 0), TokenPrior(1, 64, 8, alpha=4.0, mode="prev")
    cmap = p8.context_map([cb])
    # successive codes stay in the same cluster (the kind of dependence speech tokens have)
    codes = np.zeros((1, 4000), np.int64)
    for t in range(1, 4000):
        same = np.flatnonzero(cmap[0] == cmap[0, codes[0, t - 1]])
        codes[0, t] = rng.choice(same) if rng.random() < 0.9 else rng.integers(64)
    b0 = p0.bits(codes, np.zeros_like(cmap), p0.tables(p0.count(codes, np.zeros_like(cmap))))
    b8 = p8.bits(codes, cmap, p8.tables(p8.count(codes, cmap)))
    assert b8 < 0.8 * b0


def test_token_prior_coarse_contexts_capture_codebook_dependence():
    rng = np.random.default_rng(1)
    cbs = [rng.normal(size=(64, 2)) for _ in range(2)]
    p0, pc = TokenPrior(2, 64, 0), TokenPrior(2, 64, 8, alpha=4.0, mode="coarse")
    cmap = pc.context_map(cbs)
    codes = rng.integers(0, 64, (2, 3000))
    for t in range(3000):  # the second codebook's code falls in the cluster of the first's
        same = np.flatnonzero(cmap[1] == cmap[0, codes[0, t]])
        if len(same) and rng.random() < 0.9:
            codes[1, t] = rng.choice(same)
    z = np.zeros_like(cmap)
    b0 = p0.bits(codes, z, p0.tables(p0.count(codes, z)))
    bc = pc.bits(codes, cmap, pc.tables(pc.count(codes, cmap)))
    assert bc < 0.9 * b0
    data = pc.encode(codes, cmap, pc.tables(pc.count(codes, cmap)))
    assert np.array_equal(pc.decode(data, codes.shape, cmap, pc.tables(pc.count(codes, cmap))), codes)


def test_token_prior_uniform_share_bounds_the_cost_of_unseen_codes():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 8, (1, 400))  # training audio used only 8 of 64 codes
    odd = rng.integers(0, 64, (1, 400))  # audio unlike it uses them all
    bits = {}
    for u in (0.0, 0.1):
        p = TokenPrior(1, 64, 0, alpha=1.0, uniform=u)
        cmap = np.zeros((1, 64), dtype=np.int32)
        t = p.tables(p.count(train, cmap))
        bits[u] = (p.bits(train, cmap, t) / train.size, p.bits(odd, cmap, t) / odd.size)
        assert np.allclose(p.pmfs(p.count(train, cmap)).sum(-1), 1)
    assert bits[0.1][1] < bits[0.0][1] and bits[0.1][1] < np.log2(64 / 0.1) + 0.05  # at most log2(V / eps)
    assert bits[0.1][0] < 3.5  # at a small cost on the training-like codes (3 bits ideal)
    with pytest.raises(EntropyError, match="uniform"):
        TokenPrior(1, 64, 0, uniform=1.0)


def test_token_prior_rejects_bad_input_and_corrupt_data():
    p = TokenPrior(2, 16, 2)
    cmap = np.zeros((2, 16), np.int32)
    codes = np.arange(20).reshape(2, 10) % 16
    tables = p.tables(p.count(codes, cmap))
    data = p.encode(codes, cmap, tables)
    with pytest.raises(EntropyError):
        p.encode(codes + 16, cmap, tables)
    with pytest.raises(EntropyError):
        p.decode(data[:-3], codes.shape, cmap, tables)
    bad = bytearray(data)
    bad[-1] ^= 0xFF
    with pytest.raises(EntropyError):
        p.decode(bytes(bad), codes.shape, cmap, tables)


# ------------------------------------------------------------------------------------------------ coding
def test_compress_decompress_roundtrip_any_length_and_n_q():
    m = ready_rvqgan(_tiny())
    for length in (1, 7, 1000):
        x = (torch.rand(1, 1, length) - 0.5) * 0.5
        payload, (codes,) = m._compress(x)
        y, (dec,) = m._decompress(payload)
        assert y.shape == x.shape and np.array_equal(codes, dec)
        with torch.no_grad():
            assert torch.allclose(y, m(x)["x_hat"], atol=1e-4)  # real bytes decode to what forward() gives
    small, _ = m._compress(x, n_q=1)
    assert len(small.streams["tokens"]) < len(payload.streams["tokens"])
    assert m._decompress(small)[1][0].shape[0] == 1
    with pytest.raises(CodecError):
        m.compress(x, n_q=4)
    with pytest.raises(CodecError):
        m.compress(torch.zeros(2, 1, 10))  # one signal at a time
    two = m.compress(torch.stack([x[0, 0], -x[0, 0]])[None])  # a mono model codes each channel on its own
    assert set(two.streams) == {"tokens", "tokens.1"}
    y2 = m.decompress(dataclasses.replace(two, meta={"channels": 2}))
    assert y2.shape == (1, 2, x.shape[-1])
    payload.ints["n_q"] = (9,)
    with pytest.raises(BitstreamError):
        m.decompress(payload)


def test_chunked_coding_equals_whole_signal_and_has_no_seams():
    m = ready_rvqgan(_tiny(chunk=4, margin=40))
    whole = ready_rvqgan(_tiny(chunk=10 ** 6, margin=0))
    t = np.arange(2000) / 8000
    x = torch.from_numpy(0.3 * np.sin(2 * np.pi * 200 * t) * np.hanning(2000)).float()[None, None]
    ca, cb = m.tokens(x), whole.tokens(x)
    assert (ca == cb).mean() > 0.99
    ya, yb = m.from_tokens(cb, 2000), whole.from_tokens(cb, 2000)
    assert float((ya - yb).abs().max()) < 1e-4
    # continuity at the chunk boundaries: no jump larger than the signal's own sample-to-sample steps
    d = ya[0, 0].diff().abs()
    hop = m.hop * m.chunk
    at = d[hop - 1::hop]
    assert float(at.max()) <= float(d.max()) + 1e-6 and float(at.mean()) < 3 * float(d.mean()) + 1e-6


def test_api_roundtrip_container_and_errors():
    from codec.api import decode, encode_audio

    m = ready_rvqgan(_tiny())
    m.model_name = "rvq-tiny"
    sig = np.random.default_rng(0).uniform(-0.3, 0.3, (3001, 1)).astype(np.float32)
    data = encode_audio(sig, 11025, m)
    out, sr = decode(data, m)
    assert sr == 11025 and out.shape == sig.shape
    low = encode_audio(sig, 11025, m, kbps=6)
    assert len(low) < len(data)
    with pytest.raises(CodecError):
        encode_audio(sig, 11025, m, kbps=0.5)
    with pytest.raises(Exception, match="(?i)truncat|corrupt|crc"):
        decode(data[:-5], m)


# ------------------------------------------------------------------------------------------------ training
def _audio_folder(tmp_path: Path, channels: int = 1):
    import soundfile as sf

    sr = 8000
    t = np.arange(sr) / sr
    for name, f0 in (("a", 220), ("b", 330), ("v", 440)):
        sig = np.stack([np.sin(2 * np.pi * f0 * (1 + 0.5 * c) * t) for c in range(channels)], 1) * 0.3
        sf.write(tmp_path / f"{name}.wav", sig.astype(np.float32), sr)


def _fit(tmp_path: Path, run: str, *extra, steps: int = 4):
    cmd = [sys.executable, str(ROOT / "train" / "fit.py"), "fit",
           "--config", str(ROOT / "train" / "configs" / "rvqgan-speech16k.yaml"),
           f"--trainer.max_steps={steps}", f"--trainer.default_root_dir={tmp_path / run}",
           f"--trainer.logger.init_args.save_dir={tmp_path / run}", "--trainer.val_check_interval=2",
           "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
           "--trainer.callbacks.init_args.dirpath=" + str(tmp_path / run / "checkpoints"),
           "--trainer.callbacks.init_args.every_n_train_steps=1",
           *[f"--model.codec.init_args.{k}={v}" for k, v in dict(TINY, sample_rate=16000).items()
             if k not in ("chunk", "margin")],
           "--model.codec.init_args.encoder_rates=[2, 4]", "--model.codec.init_args.disc_start=1",
           f"--data.init_args.train=[{tmp_path / 'a.wav'},{tmp_path / 'b.wav'}]",
           f"--data.init_args.val=[{tmp_path / 'v.wav'}]", "--data.init_args.excerpt=2048",
           "--data.init_args.batch_size=2", "--data.init_args.val_excerpt=4096", "--data.init_args.val_count=2",
           "--data.init_args.val_batch_size=2", *extra]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return tmp_path / run / "checkpoints" / "last.ckpt"


def test_eight_bit_weights_load_as_exported_and_decode_files_of_the_model_that_wrote_them(tmp_path):
    """``weight_bits=8``: large kernels stored as int8 codes and float32 scales (format 2), the quantiser kept in
    float16; loading gives exactly the weights export left in the model (same fingerprint, same decoded samples),
    about half the bytes; a re-export keeps the codes; scales that do not fit their codes are refused."""
    from codec.api import decode, encode_audio
    from codec.checkpoints import FORMAT_INT8, load_checkpoint_file, quantize_int8, dequantize_int8
    from codec.export import export

    w = torch.randn(6, 5, 7)
    w[2] = 0  # a dead channel gets scale 0, not a division by zero
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127 and float(scale[2]) == 0 and not q[2].any()
    assert (dequantize_int8(q, scale) - w).abs().amax(dim=(1, 2)).le(scale / 2 + 1e-7).all()  # nearest codes

    m = ready_rvqgan(_tiny(decoder_dim=64))
    ck = m.export("t8", weight_bits=8)
    torch.save(ck, tmp_path / "t8.pt")
    torch.save(ready_rvqgan(_tiny(decoder_dim=64)).export("t16"), tmp_path / "t16.pt")
    assert ck["format"] == FORMAT_INT8 and ck["scales"]
    sd = ck["state_dict"]
    for k in ck["scales"]:
        assert sd[k].dtype == torch.int8 and sd[k].numel() >= 1024 and not k.startswith("quantizer."), k
    assert all(v.dtype == torch.float16 for k, v in sd.items() if k.startswith("quantizer.") and v.is_floating_point())
    assert sum(v.numel() for k, v in sd.items() if k in ck["scales"]) > 0.7 * m.num_parameters()
    assert (tmp_path / "t8.pt").stat().st_size < 0.8 * (tmp_path / "t16.pt").stat().st_size

    loaded = load_checkpoint_file(tmp_path / "t8.pt")
    assert loaded.fingerprint() == m.fingerprint()
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    sig = np.random.default_rng(0).uniform(-0.3, 0.3, (3000, 1)).astype(np.float32)
    data = encode_audio(sig, 8000, m)
    assert np.array_equal(decode(data, m)[0], decode(data, loaded)[0])

    e = export(tmp_path / "t8.pt", tmp_path / "again.pt")  # a shipped 8-bit file stays 8-bit
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert e["weight_bits"] == 8 and set(again["scales"]) == set(ck["scales"])
    assert all(torch.equal(again["state_dict"][k], sd[k]) for k in sd)
    assert load_checkpoint_file(tmp_path / "again.pt").fingerprint() == m.fingerprint()
    e16 = export(tmp_path / "t8.pt", tmp_path / "as16.pt", weight_bits=16)
    assert "weight_bits" not in e16 and "scales" not in torch.load(tmp_path / "as16.pt", weights_only=True)

    k = sorted(ck["scales"])[0]
    for bad in (ck["scales"][k][:-1], -ck["scales"][k], ck["scales"][k] * float("nan")):
        broken = dict(ck, scales=dict(ck["scales"], **{k: bad}))
        torch.save(broken, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match="8-bit weights"):
            load_checkpoint_file(tmp_path / "bad.pt")
    torch.save(dict(ck, state_dict=dict(sd, **{k: sd[k].float()})), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="8-bit weights"):
        load_checkpoint_file(tmp_path / "bad.pt")
    torch.save(dict(ck, scales={j: v for j, v in ck["scales"].items() if j != k}), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="without a scale"):
        load_checkpoint_file(tmp_path / "bad.pt")


def test_gan_training_resume_export_and_coding(tmp_path):
    """Mel-only warm-up batch, then G and D steps (manual optimisation), resume, export (token prior fitted on the
    training audio, discriminators dropped), and coding through the API."""
    from codec.api import decode, encode_audio
    from codec.checkpoints import load_checkpoint_file
    from codec.export import export

    _audio_folder(tmp_path)
    ck = _fit(tmp_path, "run", steps=3)
    state = torch.load(ck, map_location="cpu", weights_only=False)
    assert any(k.startswith("parts.discriminator.") for k in state["state_dict"])  # training-only, in the task
    assert len(state["optimizer_states"]) == 2 and int(state["state_dict"]["codec.train_batches"]) == 2
    ck2 = _fit(tmp_path, "run", f"--ckpt_path={ck}", steps=5)  # resume
    state = torch.load(ck2, map_location="cpu", weights_only=False)
    assert int(state["state_dict"]["codec.train_batches"]) == 3
    (tmp_path / "out").mkdir()
    e = export(ck2, tmp_path / "out" / "rvq-tiny.pt")
    assert e["modality"] == "audio" and "TokenPrior" in e["training"]["prior"]
    assert "GAN" in e["training"]["loss"]
    shipped = torch.load(tmp_path / "out" / "rvq-tiny.pt", weights_only=True)
    assert not any(k.startswith(("discriminator.", "mel_loss.")) for k in shipped["state_dict"])
    assert "prior_counts" not in shipped["state_dict"] and set(shipped["tables"]) == {"tokens"}
    model = load_checkpoint_file(tmp_path / "out" / "rvq-tiny.pt")
    assert not hasattr(model, "discriminator")
    sig = np.random.default_rng(0).uniform(-0.3, 0.3, (5000, 2)).astype(np.float32)  # stereo -> mono model
    out, sr = decode(encode_audio(sig, 16000, model), model)
    assert sr == 16000 and out.shape == sig.shape
    # new prior settings on the shipped file: refitted on the recorded training audio, with augmented variants
    aug = {"speeds": [0.9, 1.0], "shifts": [0, 3], "gains": [1.0, 0.5]}
    e2 = export(tmp_path / "out" / "rvq-tiny.pt", tmp_path / "out" / "rvq-tiny2.pt",
                prior={"prior_contexts": 2, "prior_uniform": 0.2, "prior_augment": aug})
    assert e2["config"]["prior_uniform"] == 0.2 and e2["config"]["prior_augment"]["shifts"] == [0, 3]
    assert "8 variants" in e2["training"]["prior"] and "0.2 of the mass uniform" in e2["training"]["prior"]
    m2 = load_checkpoint_file(tmp_path / "out" / "rvq-tiny2.pt")
    assert m2.prior.contexts == 2 and m2.prior.uniform == 0.2
    assert m2.tables["tokens"].num_tables == 3 * 3 and m2.tables["tokens"] != model.tables["tokens"]
    out, sr = decode(encode_audio(sig, 16000, m2), m2)
    assert out.shape == sig.shape
    with pytest.raises(CheckpointError, match="unknown token-prior settings"):
        export(tmp_path / "out" / "rvq-tiny.pt", tmp_path / "out" / "x.pt", prior={"prior_size": 3})
    with pytest.raises(CodecError, match="prior_augment"):
        export(tmp_path / "out" / "rvq-tiny.pt", tmp_path / "out" / "x.pt", prior={"prior_augment": {"pitch": 1}})


@pytest.mark.slow
def test_ddp_two_processes(tmp_path):
    _audio_folder(tmp_path)
    # the discriminators sit out the mel-only warm-up (and the G step), so DDP must allow unused parameters
    ck = torch.load(_fit(tmp_path, "ddp", "--trainer.strategy=ddp_find_unused_parameters_true",
                         "--trainer.devices=2", steps=4), map_location="cpu", weights_only=True)
    assert ck["codec_training"]["world_size"] == 2
    # the GAN switched on after the first batch (disc_start=1): from then on each batch steps D and G, and Lightning
    # counts both optimiser steps (1 + 2 + 2 = 5 >= max_steps 4 after three batches); D's optimiser state is saved
    assert ck["global_step"] == 5 and int(ck["state_dict"]["codec.train_batches"]) == 3
    assert len(ck["optimizer_states"]) == 2
    assert any(k.startswith("parts.discriminator.") for k in ck["state_dict"])


def test_visqol_ranks_degradation_and_refuses_too_short_audio():
    """The ViSQOL helper of the evaluation (codec.eval.reproduce.visqol): a clean copy scores clearly above a noisy
    one, and audio under 0.5 s is refused with a clear error."""
    pytest.importorskip("visqol")
    from codec.eval.reproduce.visqol import visqol_api, visqol_mos

    sr = 16000
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * sr)) / sr
    # a speech-like test signal: harmonic bursts with a moving pitch
    f0 = 120 + 40 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    ref = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    ref = (0.1 * ref / np.abs(ref).max()).astype(np.float32)
    noisy = ref + 0.01 * rng.standard_normal(len(ref)).astype(np.float32)
    api = visqol_api()
    clean_mos = visqol_mos(api, ref, ref, sr)
    noisy_mos = visqol_mos(api, ref, noisy, sr)
    assert clean_mos > noisy_mos + 0.3
    with pytest.raises(CodecError, match="0.5 s"):
        visqol_mos(api, ref[: sr // 4], ref[: sr // 4], sr)


# ------------------------------------------------------------------------------------------------ f0 track
F0_TINY = dict(TINY, encoder_rates=[4, 5], decoder_type="vocos", vocos_dim=16, vocos_layers=2, margin=40,
               f0_bins=64, f0_harmonics=20)


def _voiced(length: int, f0: float = 150.0, sr: int = 8000) -> torch.Tensor:
    """A vowel-like test signal: harmonics of a gliding f0 with falling amplitudes, faded in and out."""
    t = np.arange(length) / sr
    ph = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 12)) * np.hanning(length)
    return torch.from_numpy(0.2 * x).float()[None, None]


def test_yin_finds_the_pitch_of_harmonic_sounds_and_not_of_noise():
    from codec.codecs.audio.pitch import F0Quantizer, yin

    sr = 16000
    t = np.arange(sr) / sr
    for f in (80.0, 147.0, 310.0):
        x = torch.from_numpy(sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 9))).float()[None]
        f0, voiced = yin(x, sr, 320)
        mid = slice(5, -5)
        assert bool(voiced[0, mid].all())
        assert float((f0[0, mid] / f - 1).abs().max()) < 0.01
        q = F0Quantizer(256)
        back, v = q.decode(q.encode(f0, voiced))
        assert bool(v[0, mid].all()) and float((back[0, mid] / f0[0, mid] - 1).abs().max()) < 0.004
    f0, voiced = yin(torch.randn(1, sr, generator=torch.Generator().manual_seed(0)), sr, 320)
    assert float(voiced.float().mean()) < 0.1


def test_f0_track_is_coded_in_its_own_stream_and_chunked_decoding_equals_whole():
    m = ready_rvqgan(_tiny(**F0_TINY))
    whole = ready_rvqgan(_tiny(**dict(F0_TINY, chunk=10 ** 6, margin=0)))
    x = _voiced(4000)
    payload, (codes,) = m._compress(x)
    assert set(payload.streams) == {"tokens", "f0"} and codes.shape[0] == m.n_codebooks + 1
    assert (codes[-1] > 0).mean() > 0.5  # the vowel is voiced
    y, (dec,) = m._decompress(payload)
    assert np.array_equal(codes, dec) and y.shape == x.shape
    assert np.array_equal(codes, whole.tokens(x))  # the f0 track and the codes do not depend on the chunking
    yb = whole.from_tokens(codes, x.shape[-1])
    assert float((y - yb).abs().max()) < 1e-4
    with torch.no_grad():
        assert torch.allclose(y, m(x)["x_hat"], atol=1e-4)  # real bytes decode to what forward() gives
    del payload.streams["f0"]
    with pytest.raises(BitstreamError, match="f0"):
        m.decompress(payload)
    with pytest.raises(CodecError, match="f0"):
        _tiny(f0_bins=64)  # needs the Vocos decoder


def test_f0_model_starts_from_weights_without_it_and_learns_its_harmonics(tmp_path):
    src = _tiny(**dict(F0_TINY, f0_bins=0, f0_harmonics=0))
    torch.save({"state_dict": src.state_dict()}, tmp_path / "src.pt")
    m = _tiny(**dict(F0_TINY, init_from=str(tmp_path / "src.pt"))).train()
    assert torch.equal(m.encoder.state_dict()["block.0.parametrizations.weight.original0"],
                       src.encoder.state_dict()["block.0.parametrizations.weight.original0"])
    x = _voiced(2400).repeat(2, 1, 1)
    from codec.codecs.audio.layers import MelLoss

    with torch.no_grad():  # silence the STFT branch: what sounds is the oscillator bank
        m.decoder.out.weight.zero_()
        m.decoder.out.bias.fill_(-30.0)

    mel, opt = MelLoss(8000, windows=(64, 256), mels=(10, 40)), torch.optim.Adam(m.decoder.harm.parameters(), 0.1)
    first = None
    for _ in range(30):
        loss = mel(m(x)["x_hat"], x)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.7 * first  # the harmonic head alone brings the output towards the vowel


def test_istft_subframes_keep_length_and_chunking_and_start_from_a_one_frame_head(tmp_path):
    """istft_hop: the head draws hop / istft_hop STFT frames per latent frame; lengths, chunked decoding and the
    fingerprinted config as before, and a head mapped from a one-frame head (head_from) draws the same sinusoid."""
    sub = dict(F0_TINY, istft_hop=10, n_fft=40)
    m = ready_rvqgan(_tiny(**sub))
    assert m.decoder.sub == 2 and m.config()["istft_hop"] == 10 and "istft_hop" not in _tiny(**F0_TINY).config()
    whole = ready_rvqgan(_tiny(**dict(sub, chunk=10 ** 6, margin=0)))
    x = _voiced(1999)
    payload, (codes,) = m._compress(x)
    y, _ = m._decompress(payload)
    assert y.shape == x.shape and float((y - whole.from_tokens(codes, x.shape[-1])).abs().max()) < 1e-4
    with pytest.raises(CodecError, match="istft_hop"):
        _tiny(**dict(F0_TINY, istft_hop=7))

    # a one-frame head (hop 20, window 80) that draws one steady sinusoid: bin 4 (0.05 cycles per sample, one
    # cycle per hop), phase 1.0 in every frame. Mapped onto four sub-frames (hop 5, window 20: bin 1), the
    # sub-frames' first samples lie 30, 35, 40, 45 samples after the old frame's: phase shifts of pi, 3 pi / 2,
    # 0 and pi / 2, which a wrong sign or a missing shift would break.
    src = _tiny(**dict(F0_TINY, f0_bins=0, f0_harmonics=0, n_fft=80))
    with torch.no_grad():
        src.decoder.out.weight.zero_()
        b = src.decoder.out.bias.view(2, 41)
        b[0].fill_(-30.0)
        b[0, 4], b[1, 4] = 0.0, 1.0
    torch.save({"state_dict": src.state_dict()}, tmp_path / "src.pt")
    m = _tiny(**dict(F0_TINY, f0_bins=0, f0_harmonics=0, istft_hop=5, n_fft=20, init_from=str(tmp_path / "src.pt")))
    assert m.decoder.sub == 4 and torch.equal(m.decoder.blocks[0].pw1.weight, src.decoder.blocks[0].pw1.weight)
    z = torch.randn(1, m.latent_dim, 30)
    with torch.no_grad():
        a, b = src.decoder(z)[0, 0, 100:-100], m.decoder(z)[0, 0, 100:-100]
    corr = float((a * b).sum() / (a.norm() * b.norm()))
    assert corr > 0.999  # the same sinusoid, frequency and phase
    # magnitudes down by half the log window ratio (the rule for noise): a sinusoid comes out sqrt(4) louder
    assert abs(float(b.norm() / a.norm()) - 2.0) < 0.05
    with pytest.raises(CheckpointError, match="init_from"):
        _tiny(**dict(F0_TINY, f0_bins=0, f0_harmonics=0, istft_hop=10, n_fft=60, init_from=str(tmp_path / "src.pt")))


def test_f0_model_trains_exports_with_its_f0_prior_and_codes_through_the_api(tmp_path):
    from codec.api import decode, encode_audio
    from codec.checkpoints import load_checkpoint_file
    from codec.export import export

    _audio_folder(tmp_path)
    ck = _fit(tmp_path, "f0", "--model.codec.init_args.decoder_type=vocos", "--model.codec.init_args.vocos_dim=16",
              "--model.codec.init_args.vocos_layers=2", "--model.codec.init_args.f0_bins=32",
              "--model.codec.init_args.f0_harmonics=10", "--model.codec.init_args.disc_start=100", steps=2)
    (tmp_path / "out").mkdir()
    e = export(ck, tmp_path / "out" / "f0.pt")
    assert "coded f0 track (32 levels) + 10 harmonic oscillators" in e["training"]["decoder"]
    shipped = torch.load(tmp_path / "out" / "f0.pt", weights_only=True)
    assert set(shipped["tables"]) == {"tokens", "f0"} and "f0_counts" not in shipped["state_dict"]
    model = load_checkpoint_file(tmp_path / "out" / "f0.pt")
    t = np.arange(12000) / 16000
    sig = (0.2 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 360 * t)).astype(np.float32)[:, None]
    out, sr = decode(encode_audio(sig, 16000, model), model)
    assert sr == 16000 and out.shape == sig.shape
    # the f0 tables are part of the model's fingerprint: other f0 tables, another model
    other = load_checkpoint_file(tmp_path / "out" / "f0.pt")
    other.set_tables({"tokens": model.tables["tokens"],
                      "f0": other.f0_prior.tables(np.ones(other.f0_prior.count_shape))})
    assert other.fingerprint() != model.fingerprint()
