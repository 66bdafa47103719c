"""Image codecs: coding through codec.entropy + the container, CompressAI interoperability, checkpoints, CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from codec.api import decode, encode_image
from codec.bitstream import BitstreamError, pack, unpack
from codec.codecs.image import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior
from codec.errors import CheckpointError, CodecError, MediaError

CLASSES = [FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior]


def _trained_like(cls, N=16, M=24, seed=0):
    """A small model with non-trivial weights and frozen tables (random init, a few forward passes)."""
    torch.manual_seed(seed)
    m = cls(N=N, M=M)
    m.eval()
    m.freeze_tables()
    m.model_name = f"test-{cls.__name__}"
    return m


def _img(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1 + h // 8, 1 + w // 8, 3)).astype(np.uint8)
    return np.ascontiguousarray(np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w])


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 70), (64, 64), (65, 129)])
def test_roundtrip_any_size(cls, shape):
    m = _trained_like(cls)
    img = _img(*shape)
    data = encode_image(img, m)
    header, payload = unpack(data)
    assert header.geometry == {"height": shape[0], "width": shape[1], "channels": 3}
    assert set(payload.streams) == set(m.streams)
    rec = decode(data, m)
    assert rec.shape == img.shape and rec.dtype == np.uint8
    # deterministic: decoding the same bytes twice gives the same picture, and it is the model's own output
    assert np.array_equal(rec, decode(data, m))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        ref = m(m.pad(x))["x_hat"].clamp(0, 1)[..., : shape[0], : shape[1]]
    ref8 = (ref[0] * 255).round().byte().permute(1, 2, 0).numpy()
    # eval-mode forward() quantises exactly as compress() does (medians / means, rounding): same reconstruction
    assert np.abs(ref8.astype(int) - rec.astype(int)).max() <= 1


@pytest.mark.parametrize("cls", CLASSES)
def test_real_bytes_close_to_likelihood(cls):
    m = _trained_like(cls, seed=1)
    img = _img(128, 192, seed=3)
    data = encode_image(img, m)
    _, payload = unpack(data)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = m(x)
    est_bits = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
    real_bits = payload.num_bytes * 8
    # untrained tiny model: small streams, so a loose bound; the shipped ladder is checked on Kodak (README)
    assert real_bits == pytest.approx(est_bits, rel=0.10, abs=400)


def test_bad_inputs_clear_errors():
    m = _trained_like(MeanScaleHyperprior)
    with pytest.raises(MediaError, match="RGB uint8"):
        encode_image(np.zeros((8, 8), np.uint8), m)
    with pytest.raises(MediaError, match="RGB uint8"):
        encode_image(np.zeros((8, 8, 3), np.float32), m)
    with pytest.raises(MediaError, match="empty"):
        encode_image(np.zeros((0, 8, 3), np.uint8), m)
    data = encode_image(_img(40, 50), m)
    with pytest.raises(BitstreamError):
        decode(data[:-7], m)
    header, payload = unpack(data)
    # corrupt the y stream inside a valid container: the entropy layer's CRC catches it
    bad = dict(payload.streams)
    y = bytearray(bad["y"])
    y[len(y) // 2] ^= 0xFF
    bad["y"] = bytes(y)
    with pytest.raises(CodecError):
        decode(pack(header, type(payload)(streams=bad, ints=payload.ints)), m)
    # another checkpoint: says which one the file needs
    other = _trained_like(MeanScaleHyperprior, seed=5)
    with pytest.raises(BitstreamError, match="needs checkpoint"):
        decode(data, other)
    # a model without frozen tables cannot code
    with pytest.raises(CheckpointError, match="no frozen CDF tables"):
        encode_image(_img(8, 8), MeanScaleHyperprior(N=8, M=8).eval())


@pytest.mark.parametrize("cls", CLASSES)
def test_compressai_state_dict_interop(cls):
    """A state_dict saved by CompressAI (zoo naming) loads into ours, reconstructs identically, codes through our
    layer, and our bytes decode to what CompressAI's own decompress() gives (exactly where no mean is predicted; with
    the mean-scale prior our means come from the exact integer hyper-synthesis on a 2**-12 grid, so the
    reconstructions agree to a small tolerance)."""
    import compressai.models.google as google

    torch.manual_seed(7)
    cai = getattr(google, cls.__name__)(N=16, M=24)
    cai.eval()
    cai.update(force=True)
    buf = io.BytesIO()
    torch.save(cai.state_dict(), buf)
    sd = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    ours = cls(N=16, M=24)
    ours.load_state_dict(sd)
    ours.eval()
    ours.freeze_tables()
    x = torch.from_numpy(_img(64, 128)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        a, b = cai(x), ours(x)
    assert torch.equal(a["x_hat"], b["x_hat"])
    for k in a["likelihoods"]:
        assert torch.equal(a["likelihoods"][k], b["likelihoods"][k])
    # tables from our adapters equal CompressAI's after update()
    with torch.no_grad():
        cai_out = cai.compress(x)
        cai_rec = cai.decompress(cai_out["strings"], cai_out["shape"])["x_hat"]
        payload = ours.compress(x)
        our_rec = ours.decompress(payload)
    if cls is MeanScaleHyperprior:
        assert float((cai_rec - our_rec).abs().max()) < 2e-3
    else:
        assert torch.equal(cai_rec, our_rec)
    cai_bytes = sum(len(s[0]) for s in cai_out["strings"])
    assert payload.num_bytes == pytest.approx(cai_bytes, rel=0.05, abs=64)


def test_build_and_config():
    from codec.codecs.base import build_codec

    m = MeanScaleHyperprior(N=8, M=12)
    assert build_codec(m.config()).config() == m.config()
    with pytest.raises(CheckpointError):
        build_codec({"class": "Nope", "N": 1, "M": 1})
    with pytest.raises(CodecError):
        MeanScaleHyperprior(N=8, M=8, metric="psnr")


def test_ms_ssim_loss_variant_and_training_configs():
    m = MeanScaleHyperprior(N=8, M=12, metric="ms-ssim", lmbda=8.73)
    x = torch.rand(1, 3, 192, 192)
    rd = m.rate_distortion(x, m(x))
    assert {"loss", "bpp", "mse", "ms_ssim"} <= set(rd)
    assert float(rd["loss"]) == pytest.approx(8.73 * (1 - float(rd["ms_ssim"])) + float(rd["bpp"]), rel=1e-5)
    mse = MeanScaleHyperprior(N=8, M=12, lmbda=0.01)
    out = mse(x)
    rd = mse.rate_distortion(x, out)
    assert float(rd["loss"]) == pytest.approx(0.01 * 255 ** 2 * float(rd["mse"]) + float(rd["bpp"]), rel=1e-5)
    # the auxiliary optimiser owns exactly the bottleneck quantiles
    opts = mse.configure_optimizers(None)
    aux_params = {id(p) for g in opts[1].param_groups for p in g["params"]}
    assert aux_params == {id(mse.entropy_bottleneck.quantiles)}


#: speech configs stacked on f0-harm and f0-more (those after the first also on f0-context)
ON_CONTEXT = ("f0-context", "f0-context-on", "f0-context16", "f0-sub2")


def _config_sets():
    """Every training config as LightningCLI reads it: standalone files, and the overrides on their bases."""
    from pathlib import Path

    d = Path(__file__).resolve().parent.parent / "train" / "configs"
    sets = []
    for f in sorted(d.glob("*.yaml")):
        n = f.stem
        if n.startswith("msh-gpu-q"):
            sets.append([d / "msh-base.yaml", d / "msh-gpu.yaml", f])
        elif n.startswith("msh-q") or n == "msh-gpu":
            sets.append([d / "msh-base.yaml", f])
        elif n.startswith("video-q") and n != "video-q4":
            sets.append([d / "video-q4.yaml", f])
        elif n.startswith("rvqgan-music24k-stereo-vocos"):  # the speech recipe on music, and its GAN phase
            base = [d / "rvqgan-music24k-stereo.yaml", d / "rvqgan-music24k-stereo-vocos.yaml"]
            sets.append(base if f == base[1] else base + [f])
        elif n.startswith("rvqgan-") and n.endswith(("-gan", "-gpu")):
            sets.append([d / f"{n.rsplit('-', 1)[0]}.yaml", f])
        elif n.startswith("qres-vae-"):
            sets.append([d / "qres-vae.yaml", f])
        else:
            sets.append([f])
    for f in sorted((d / "speech").glob("*.yaml")):  # speech recipes: stage-1 candidates, then on vocos256-cplx
        stage2 = f.stem.startswith(("s2-", "ft-", "f0-")) or f.stem in ("final", "gan-long")
        sets.append([d / "rvqgan-speech16k-ls.yaml"] + ([d / "speech" / "vocos256-cplx.yaml"] if stage2 else []) +
                    ([d / "speech" / "f0-harm.yaml"] if f.stem in ("f0-harm-long", "f0-more") + ON_CONTEXT else []) +
                    ([d / "speech" / "f0-more.yaml"] if f.stem in ON_CONTEXT else []) +
                    ([d / "speech" / "f0-context.yaml"] if f.stem in ON_CONTEXT[1:] else []) + [f])
    return sets


def test_every_training_config_parses(capsys, monkeypatch):
    """train/fit.py accepts every config (and override stack): the codec class is a registered codec and no
    evaluation set (Kodak, CLIC) is in the training data; an override changes what it says and keeps the rest."""
    import yaml

    from codec.codecs.base import codec_class
    from codec.train.fit import main

    import sys

    monkeypatch.setattr(sys, "argv", ["fit.py"])
    sets = _config_sets()
    assert len(sets) >= 20
    parsed = {}
    for files in sets:
        args = ["fit"] + [a for f in files for a in ("--config", str(f))] + ["--print_config"]
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code in (0, None), files
        cfg = yaml.safe_load(capsys.readouterr().out)
        c = cfg["model"]["codec"]
        assert codec_class(c["class_path"].rsplit(".", 1)[-1]).__name__ == c["class_path"].rsplit(".", 1)[-1]
        data = cfg["data"]["init_args"]
        train = data.get("train_dirs") or data.get("train") or []
        assert train and all("kodak" not in str(t) and "clic" not in str(t) for t in train), files
        parsed[files[-1].stem] = cfg
    q5, base = parsed["msh-q5"], parsed["msh-base"]
    assert q5["model"]["codec"]["init_args"]["lmbda"] == 0.035 and q5["model"]["codec"]["init_args"]["N"] == 64
    assert q5["trainer"]["max_steps"] == 2500 and q5["data"] == base["data"]
    assert parsed["msh-gpu-q3"]["data"]["init_args"]["crop_size"] == 256
    long = parsed["qres-vae-long"]["model"]["codec"]["init_args"]  # the shipped model's second stage
    assert long["lr_milestones"] == [3500] and long["init_from"] and parsed["qres-vae-long"]["trainer"]["max_steps"] == 5000
    for name in ("qres-vae-stage3", "qres-vae-stage4", "qres-vae-stage5", "qres-vae-stage6-wide", "qres-vae-stage6-hi"):
        # its prefix-trained stages, each from the stage before
        ia = parsed[name]["model"]["codec"]["init_args"]
        n = int(name.split("stage")[1][0])
        assert ia["prefix_drop"] == 0.25 and ia["init_from"].endswith(f"stage{n - 1}-final.ckpt"), name
    wide = parsed["qres-vae-stage6-wide"]["model"]["codec"]["init_args"]  # the widened lambda range, ten qualities
    assert wide["lmbda_range"] == [0.0004, 0.5] and wide["qualities"] == 10
    # stage 7 from stage 6 widened at the low end (and its control widened at both ends), stage 8 from the first
    # with the top raised: twelve qualities each
    for name, init, rng in (("qres-vae-stage7-lo", "stage6-wide-final.ckpt", [0.0001, 0.5]),
                            ("qres-vae-stage7-span", "stage6-wide-final.ckpt", [0.0001, 1.5]),
                            ("qres-vae-stage8-span", "stage7-lo-final.ckpt", [0.0001, 1.5])):
        ia = parsed[name]["model"]["codec"]["init_args"]
        assert ia["init_from"].endswith("/" + init) and ia["lmbda_range"] == rng and ia["qualities"] == 12, name
        assert ia["prefix_drop"] == 0.25 and parsed[name]["trainer"]["default_root_dir"] == f"runs/{name}", name
    # stage 9 from stage 8 with the low end lowered to 0.000025, fourteen qualities; embedding kept on stage 8's
    # scale, its controls rescaled as the stages before did, or rounding the latents in training
    for name, er, qz in (("qres-vae-stage9-lo", [0.0001, 1.5], "noise"), ("qres-vae-stage9-remap", None, "noise"),
                         ("qres-vae-stage9-ste", [0.0001, 1.5], "ste")):
        ia = parsed[name]["model"]["codec"]["init_args"]
        assert ia["init_from"].endswith("/stage8-span-final.ckpt") and ia["lmbda_range"] == [0.000025, 1.5], name
        assert ia["qualities"] == 14 and ia["embed_range"] == er and ia["prefix_drop"] == 0.25, name
        assert ia["quantization"] == qz, name
    lowlr = parsed["qres-vae-stage10-lowlr"]["model"]["codec"]["init_args"]  # stage 9 on at its low lr alone
    assert lowlr["init_from"].endswith("/stage9-lo-final.ckpt") and lowlr["lr"] == 5e-5 and not lowlr["lr_milestones"]
    assert lowlr["lmbda_range"] == [0.000025, 1.5] and lowlr["embed_range"] == [0.0001, 1.5]
    for name, lr, gamma in (("qres-vae-stage11-lowlr", 5e-5, 0.2), ("qres-vae-stage11-midlr", 1e-4, 0.1)):
        ia = parsed[name]["model"]["codec"]["init_args"]  # stage 10 on, then a drop at step 4,500 of 6,000
        assert ia["init_from"].endswith("/stage10-lowlr-final.ckpt") and ia["lr"] == lr, name
        assert ia["lr_milestones"] == [4500] and ia["lr_gamma"] == gamma, name
        assert parsed[name]["trainer"]["max_steps"] == 6000, name
        assert ia["lmbda_range"] == [0.000025, 1.5] and ia["embed_range"] == [0.0001, 1.5] and ia["qualities"] == 14
    # the magnitude candidates from the shipped speech model: the control keeps the complex loss, the rest drop it
    for name, stft, logmag in (("ft-same", 50.0, 0.0), ("ft-mel", 0.0, 0.0), ("ft-logmag", 0.0, 45.0)):
        ia = parsed[name]["model"]["codec"]["init_args"]
        assert ia["init_from"] == "runs/speech/rvqgan-speech16k-libri.pt" and ia["decoder_type"] == "vocos", name
        assert ia["stft_weight"] == stft and ia["logmag_weight"] == logmag and ia["lr"] == 2.7e-4, name
        assert parsed[name]["trainer"]["default_root_dir"] == f"runs/speech-mag/{name[3:]}", name
    # the pitch candidates: ft-mel's recipe with the coded f0 track, with and without the oscillators
    for name, harmonics in (("f0-harm", 100), ("f0-cond", 0)):
        ia = parsed[name]["model"]["codec"]["init_args"]
        assert ia["init_from"] == "runs/speech/rvqgan-speech16k-libri.pt" and ia["decoder_type"] == "vocos", name
        assert ia["stft_weight"] == 0.0 and ia["f0_bins"] == 256 and ia["f0_harmonics"] == harmonics, name
        assert parsed[name]["trainer"]["max_steps"] == 2000, name
    long = parsed["f0-harm-long"]
    assert long["model"]["codec"]["init_args"]["f0_harmonics"] == 100 and long["trainer"]["max_steps"] == 12000
    assert long["trainer"]["default_root_dir"] == "runs/speech-f0/harm-long"
    # the f0 model trained on, two arms from its weights: the same recipe, and 0.8 s excerpts in batches of 4
    for name, excerpt, batch in (("f0-more", 6400, 8), ("f0-context", 12800, 4)):
        ia = parsed[name]["model"]["codec"]["init_args"]
        assert ia["init_from"] == "runs/speech-f0/start-73bfa52.pt" and ia["lr"] == 1e-4, name
        assert ia["f0_harmonics"] == 100 and ia["stft_weight"] == 0.0, name
        data = parsed[name]["data"]["init_args"]
        assert (data["excerpt"], data["batch_size"]) == (excerpt, batch), name
        assert parsed[name]["trainer"]["default_root_dir"] == f"runs/speech-f0/{name[3:]}", name
    # three arms from the f0-context arm's end: the same recipe, 1.6 s excerpts, and an iSTFT head of two frames
    plain = (None, None)
    for name, excerpt, batch, head in (("f0-context-on", 12800, 4, plain), ("f0-context16", 25600, 2, plain),
                                       ("f0-sub2", 12800, 4, (160, 640))):
        ia, data = parsed[name]["model"]["codec"]["init_args"], parsed[name]["data"]["init_args"]
        assert (data["excerpt"], data["batch_size"]) == (excerpt, batch), name
        assert (ia.get("istft_hop"), ia.get("n_fft")) == head and ia["f0_harmonics"] == 100, name
        assert parsed[name]["trainer"]["default_root_dir"] == f"runs/speech-f0/{name[3:]}", name
    assert parsed["f0-sub2"]["model"]["codec"]["init_args"]["init_from"] == "runs/speech-f0/start-6b32e27.pt"
    s12 = parsed["qres-vae-stage12-lowlr"]  # stage 11 on in its shape, shorter
    assert s12["model"]["codec"]["init_args"]["init_from"].endswith("/stage11-lowlr-final.ckpt")
    assert s12["model"]["codec"]["init_args"]["lr_milestones"] == [3000] and s12["trainer"]["max_steps"] == 4000
    # the crop stages: 256 px against 128 px at equal pixels (stage 12), then 256 against 320 px (stage 13), then
    # 320 px with the top of the range raised, at batch 3 against batch 6 at equal pixels (stage 14)
    for name, init, crop, batch, steps, top, milestone in (
            ("qres-vae-stage12-crop256", "stage11-lowlr", 256, 4, 4000, 1.5, 3250),
            ("qres-vae-stage12-crop128", "stage11-lowlr", 128, 8, 8000, 1.5, 6500),
            ("qres-vae-stage13-crop256", "stage12-crop256", 256, 4, 3000, 1.5, 2400),
            ("qres-vae-stage13-crop320", "stage12-crop256", 320, 3, 2500, 1.5, 2100),
            ("qres-vae-stage14-crop320", "stage13-crop320", 320, 3, 5000, 2.5, 4250),
            ("qres-vae-stage14-crop320-b6", "stage13-crop320", 320, 6, 2500, 2.5, 2125),
            ("qres-vae-stage15-crop320", "stage14-crop320", 320, 3, 5000, 2.5, 4250),
            ("qres-vae-stage15-logbal", "stage14-crop320", 320, 3, 5000, 2.5, 4250)):
        ia, data = parsed[name]["model"]["codec"]["init_args"], parsed[name]["data"]["init_args"]
        assert ia["init_from"] == f"runs/qres-vae/{init}-final.ckpt" and ia["lr"] == 1e-4, name
        assert data["crop_size"] == crop and data["batch_size"] == batch, name
        assert parsed[name]["trainer"]["max_steps"] == steps and ia["lmbda_range"] == [0.000025, top], name
        assert ia["lr_milestones"] == [milestone] and ia["lr_gamma"] == 0.1, name
        assert ia["qualities"] == 14 and ia["embed_range"] == [0.0001, 1.5] and ia["prefix_drop"] == 0.25, name
        assert parsed[name]["trainer"]["default_root_dir"] == f"runs/{name}", name
    pixels = {n: parsed[n]["trainer"]["max_steps"] * parsed[n]["data"]["init_args"]["batch_size"]
              * parsed[n]["data"]["init_args"]["crop_size"] ** 2 for n in parsed if "-crop" in n}
    assert pixels["qres-vae-stage12-crop256"] == pixels["qres-vae-stage12-crop128"]
    assert pixels["qres-vae-stage14-crop320"] == pixels["qres-vae-stage14-crop320-b6"]
    # stage 15: the same recipe, plain against each image's loss weighed by its own value
    assert parsed["qres-vae-stage15-logbal"]["model"]["codec"]["init_args"]["loss_balance"] == "log"
    assert parsed["qres-vae-stage15-crop320"]["model"]["codec"]["init_args"]["loss_balance"] == "none"
    # stage 16: log balance on from stage 15's log-balanced end, float32 against bfloat16 mixed precision at equal
    # wall time (the bf16 arm ran about twice the float32 arm's step rate side by side, so twice the steps)
    s16, b16 = parsed["qres-vae-stage16-logbal"], parsed["qres-vae-stage16-bf16"]
    for cfg, steps, milestone in ((s16, 3000, 2550), (b16, 6000, 5100)):
        ia = cfg["model"]["codec"]["init_args"]
        assert ia["init_from"] == "runs/qres-vae/stage15-logbal-final.ckpt" and ia["loss_balance"] == "log"
        assert cfg["trainer"]["max_steps"] == steps and ia["lr_milestones"] == [milestone] and ia["lr"] == 1e-4
        assert ia["lmbda_range"] == [0.000025, 2.5] and cfg["data"]["init_args"]["crop_size"] == 320
    assert s16["trainer"]["precision"] is None and s16["model"]["channels_last"] is False
    assert b16["trainer"]["precision"] == "bf16-mixed" and b16["model"]["channels_last"] is True
    assert parsed["qres-vae-stage5-wide"]["model"]["codec"]["init_args"]["lmbda_range"] == [0.0009, 0.45]
    assert parsed["qres-vae-stage3-plain"]["model"]["codec"]["init_args"]["prefix_drop"] == 0
    for name in ("rvqgan-music24k-stereo-vocos-gan", "gan-long"):  # a GAN phase on top of the Vocos recipe
        ia = parsed[name]["model"]["codec"]["init_args"]
        assert ia["decoder_type"] == "vocos" and ia["disc_start"] == 0 and ia["init_from"], name
    assert parsed["rvqgan-music24k-stereo-vocos"]["data"]["init_args"]["channels"] == 2
    big = parsed["qres-vae-34m"]["model"]["codec"]["init_args"]
    assert big["block"] == "convnext" and big["blocks"] == [1, 2, 3, 3, 3] and big["zdims"] == [16, 14, 12, 10, 8]
    assert parsed["video-q1"]["model"]["codec"]["init_args"]["lr_milestones"] is None
    gan = parsed["rvqgan-music24k-stereo-gan"]["model"]["codec"]["init_args"]
    assert gan["disc_start"] == 0 and gan["channels"] == 2 and gan["n_codebooks"] == 16
