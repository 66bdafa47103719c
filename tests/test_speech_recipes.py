"""The speech recipes: the Vocos-style iSTFT decoder (exact length, chunked decoding without seams, config round
trip), the phase-sensitive compressed complex STFT loss, the held-out speech sets, the recipe comparison and the
DAC peer check's shared training code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.codecs.audio import RVQGAN
from codec.codecs.audio.layers import ComplexSTFTLoss, LogMagSTFTLoss, MelLoss, VocosDecoder
from codec.errors import CodecError
from conftest import ready_rvqgan

VOCOS = dict(channels=1, sample_rate=8000, encoder_dim=4, encoder_rates=[2, 3], n_codebooks=3, codebook_size=16,
             codebook_dim=4, chunk=4, margin=12, prior_contexts=4, mpd_width=2, mrd_width=4, decoder_type="vocos",
             vocos_dim=16, vocos_layers=2, n_fft=24)


def _vocos(**kw) -> RVQGAN:
    torch.manual_seed(0)
    return ready_rvqgan(RVQGAN(**dict(VOCOS, **kw)).eval())  # prior on 1 s (8,000 samples) of noise


@pytest.mark.parametrize("length", [1, 5, 6, 7, 61, 500])
def test_vocos_decoder_returns_exactly_the_input_length(length):
    m = _vocos()
    x = torch.randn(2, 1, length) * 0.1
    with torch.no_grad():
        assert m(x)["x_hat"].shape == x.shape
        assert m.decoder(torch.randn(1, m.latent_dim, 7)).shape == (1, 1, 7 * 6)
    payload, (codes,) = m._compress(x[:1])
    y, (dec,) = m._decompress(payload)
    assert y.shape == x[:1].shape and np.array_equal(codes, dec)


def test_vocos_multichannel_and_bad_settings():
    m = _vocos(channels=3)
    with torch.no_grad():
        assert m(torch.randn(1, 3, 100) * 0.1)["x_hat"].shape == (1, 3, 100)
    with pytest.raises(CodecError, match="n_fft"):
        RVQGAN(**dict(VOCOS, n_fft=7))
    with pytest.raises(CodecError, match="decoder_type"):
        RVQGAN(**dict(VOCOS, decoder_type="wavenet"))


def test_vocos_config_round_trip_keeps_the_decoder():
    m = _vocos()
    cfg = m.config()
    assert cfg["decoder_type"] == "vocos" and cfg["n_fft"] == 24
    again = RVQGAN(**{k: v for k, v in cfg.items() if k != "class"})
    assert isinstance(again.decoder, VocosDecoder)
    again.load_state_dict(m.state_dict())
    # a DAC-decoder config stays as it was (shipped checkpoints' configs and fingerprints do not change)
    assert "decoder_type" not in RVQGAN(**{k: v for k, v in VOCOS.items() if k not in
                                          ("decoder_type", "vocos_dim", "vocos_layers", "n_fft")}).config()


def test_vocos_chunked_decoding_equals_whole_signal_when_the_margin_covers_the_context():
    m = _vocos()
    ctx = m.decoder.context_frames
    assert ctx == 3 + 3 * 2 + 2
    t = np.arange(3000) / 8000
    x = torch.from_numpy(0.3 * np.sin(2 * np.pi * 200 * t) * np.hanning(3000)).float()[None, None]
    codes = m.tokens(x)
    chunk, margin = m.chunk, m.margin
    try:
        m.margin = ctx
        ya = m.from_tokens(codes, 3000)
        m.chunk, m.margin = 10 ** 6, 0
        yb = m.from_tokens(codes, 3000)
        m.chunk, m.margin = 4, 2  # a margin short of the context: seams appear, so the test can tell
        yc = m.from_tokens(codes, 3000)
    finally:
        m.chunk, m.margin = chunk, margin
    assert float((ya - yb).abs().max()) < 1e-5
    assert float((yc - yb).abs().max()) > 1e-4


def test_complex_stft_loss_sees_the_phase_that_the_mel_loss_ignores():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 8000
    x = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(8000, generator=g))[None, None]
    cplx, mel = ComplexSTFTLoss((64, 128, 256)), MelLoss(8000, windows=(64, 128, 256), mels=(10, 20, 40))
    assert float(cplx(x, x)) == 0.0
    flipped = -x  # same magnitudes everywhere, every phase turned by pi
    assert float(mel(flipped, x)) < 1e-5
    assert float(cplx(flipped, x)) > 0.5 * float(cplx(torch.zeros_like(x), x))
    # and it is differentiable with finite gradients at silence
    y = torch.zeros_like(x, requires_grad=True)
    cplx(y, x).backward()
    assert torch.isfinite(y.grad).all()


def test_log_magnitude_loss_ignores_the_phase_and_prefers_the_right_magnitude_to_silence():
    """Unlike the complex loss, the log-magnitude loss does not reward a decoder for going quiet where its phase is
    wrong; and it sees a harmonic smeared into its neighbours, at any frequency."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 8000
    x = (0.3 * torch.sin(2 * torch.pi * 3000 * t) + 0.01 * torch.randn(8000, generator=g))[None, None]
    lm, cplx = LogMagSTFTLoss((128, 256)), ComplexSTFTLoss((128, 256))
    assert float(lm(x, x)) == 0.0 and float(lm(-x, x)) < 1e-5
    shifted = torch.roll(x, 37, -1)  # the right magnitude at the wrong phase
    quiet = 0.3 * shifted
    assert float(lm(shifted, x)) < float(lm(quiet, x))
    assert float(cplx(quiet, x)) < float(cplx(shifted, x))  # the pull towards silence this loss avoids
    smeared = x + 0.1 * torch.sin(2 * torch.pi * 3100 * t)[None, None]
    assert float(lm(smeared, x)) > 0.05


def test_generator_loss_adds_the_phase_and_waveform_terms():
    m = _vocos(stft_weight=2.0, wave_weight=3.0, logmag_weight=4.0, logmag_windows=[128, 256]).train()
    parts = torch.nn.ModuleDict(m.training_parts())
    x = torch.randn(2, 1, 2400) * 0.1  # longer than the discriminators' largest STFT window
    out = m(x)
    loss, logs = m.generator_loss(parts, x, out, gan=False)
    assert {"train/cplx", "train/wave", "train/mel", "train/logmag"} <= set(logs) and "train/adv" not in logs
    base = 15.0 * logs["train/mel"] + 0.25 * out["commitment"] + 1.0 * out["codebook"]
    assert torch.allclose(loss, base + 2.0 * logs["train/cplx"] + 3.0 * logs["train/wave"] + 4.0 * logs["train/logmag"])
    loss_gan, logs_gan = m.generator_loss(parts, x, out, gan=True)
    assert "train/adv" in logs_gan and "train/fm" in logs_gan
    loss_gan.backward()


def test_held_out_speech_sets():
    from codec.eval.datasets import resolve

    full, sub = resolve("speech-test"), resolve("speech-test-subset")
    assert len(full.items) == 111 and len(sub.items) == 31 and full.speech and sub.speech
    assert set(sub.items) <= set(full.items)
    assert sum("librispeech_test_other" in str(p) for p in full.items) == 100
    # never the training speech
    from codec.train.data import list_audio
    from codec.eval.reproduce.dac_peer import TRAIN

    assert not {p.resolve() for p in list_audio(TRAIN)} & {p.resolve() for p in full.items}


def test_recipe_scores_rank_a_decoder_against_a_broken_one():
    from codec.eval.reproduce.speech_recipes import heldout_scores

    t = torch.arange(16000) / 16000
    x = (0.2 * torch.sin(2 * torch.pi * 180 * t) * (1 + torch.sin(2 * torch.pi * 3 * t)))[None, None]
    sig = [("tone", x)]
    good = heldout_scores(lambda s, q: 0.9 * s, sig, 16000, [1])[1]
    bad = heldout_scores(lambda s, q: s.flip(-1)[..., :-5], sig, 16000, [1])[1]  # short output is padded
    assert good["si-sdr"] > 30 > bad["si-sdr"] and good["mel-distance"] < bad["mel-distance"]


def test_dac_peer_batches_are_the_same_for_both_sides_and_our_side_trains():
    from codec.eval.reproduce.dac_peer import Batches, Ours

    b = Batches(2400, 2)
    assert torch.equal(b.get(3), Batches(2400, 2).get(3)) and not torch.equal(b.get(3), b.get(4))
    ours = Ours()
    x = b.get(0)
    out = ours.forward(x)
    loss, mel = ours.g_loss(x, out, gan=False)
    assert torch.isfinite(loss) and mel > 0
    assert torch.isfinite(ours.d_loss(x, out))


def test_dac_peer_keeps_the_end_of_the_warmup_and_resumes(tmp_path):
    """The mel-only warm-up's end is kept as its own checkpoint; a second call resumes instead of starting over."""
    import argparse

    from codec.eval.reproduce.dac_peer import train

    args = argparse.Namespace(steps=2, warmup=1, batch=1, excerpt=2400, dir=str(tmp_path))
    train("ours", args)
    warm = torch.load(tmp_path / "ours-warmup.pt", weights_only=False)["state"]
    end = torch.load(tmp_path / "ours.pt", weights_only=False)["state"]
    assert warm["step"] == 1 and end["step"] == 2 and len(end["log"]) == 2
    args.steps = 3
    train("ours", args)
    assert torch.load(tmp_path / "ours.pt", weights_only=False)["state"]["step"] == 3


def test_dac_peer_theirs_matches_our_size():
    pytest.importorskip("dac")
    from codec.eval.reproduce.dac_peer import Ours, Theirs

    ours, theirs = Ours(), Theirs()
    assert sum(p.numel() for p in ours.gen.parameters()) == sum(p.numel() for p in theirs.gen.parameters())
    x = torch.randn(1, 1, 3200) * 0.05
    with torch.no_grad():
        assert theirs.forward(x)["x_hat"].shape == x.shape  # padded to the input length


def test_rvqgan_reproduce_refuses_an_unknown_model():
    """A model that is neither shipped-and-listed nor an exported FILE.pt with --set is named, not a KeyError."""
    from codec.eval.reproduce.rvqgan import main

    with pytest.raises(SystemExit, match="unknown model 'nope'"):
        main(["--models", "nope", "--no-manifest"])
    with pytest.raises(SystemExit, match="FILE.pt with --set"):
        main(["--models", "cand.pt", "--no-manifest"])


def test_speech_limits_swaps_magnitude_and_phase():
    """Swapping in the input's phase repairs a decoder that lost only its phase; the band error reads a gain."""
    from codec.eval.reproduce.speech_limits import VARIANTS, band_level_error, limits, recombine

    t = torch.arange(16000, dtype=torch.float64) / 16000
    x = 0.2 * torch.sin(2 * torch.pi * 180 * t) * (1 + torch.sin(2 * torch.pi * 3 * t)) + 0.01 * torch.randn(16000,
                                                                                                          dtype=t.dtype)
    for v in VARIANTS[:3]:  # with a perfect decoder the swaps give the input back
        assert (recombine(x, x, v) - x)[1024:-1024].abs().max() < 1e-6
    assert np.allclose(band_level_error(x, 0.5 * x, 16000), -6.02, atol=0.01)
    lost_phase = recombine(x, x, "input magnitude, random phase")
    x32 = x.float()[None, None]
    r = limits(lambda s, q: lost_phase.float()[None, None], [("tone", x32)], 16000, 12)
    assert r["decoded magnitude, input phase"]["si-sdr"] > r["decoded"]["si-sdr"] + 10
