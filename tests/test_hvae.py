"""The hierarchical VAE image codec (QRes-VAE design, QARV variable rate): exact top-down path, real bytes,
variable rate, progressive decoding, portability, training and export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.codecs.image import QResVAE
from codec.entropy import intnet
from codec.errors import BitstreamError, CodecError, DivergenceError

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(widths=[16, 16, 12, 12, 8], blocks=[1, 1, 2, 1, 1], zdims=[4, 4, 3, 3, 2], qualities=4)


def _tiny(seed: int = 0, block: str = "conv") -> QResVAE:
    torch.manual_seed(seed)
    m = QResVAE(**TINY, block=block)
    with torch.no_grad():  # random but non-trivial residual branches and priors (pw2 starts at zero)
        for blk in m._res_blocks():
            blk.pw2.weight.normal_(0, 0.05)
        for bl in m.latents:
            for b in bl:
                b.prior.weight.mul_(4)
    m.prepare_export({})
    m.eval()
    m.freeze_tables()
    return m


def _image(h=70, w=90, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_config_sizes_and_published_configuration():
    m = QResVAE(**TINY)
    assert QResVAE.from_config(m.config()).config() == m.config()
    assert m.num_latent_blocks == 6 and len(m.quality_lambdas()) == 4
    big = QResVAE(widths=[512, 512, 384, 256, 128], blocks=[1, 2, 3, 3, 3], zdims=[16, 14, 12, 10, 8],
                  enc_widths=[512, 512, 384, 256, 128], block="convnext")
    assert 33e6 < big.num_parameters() < 36e6  # the published qres34m layout
    assert 2e6 < QResVAE().num_parameters() < 4e6  # the CPU-trainable default
    for kind in ("conv", "convnext"):  # both block kinds compile to the exact integer path
        m = QResVAE(**TINY, block=kind)
        m.prepare_export({})
        m.eval().freeze_tables()
        assert m.decompress(m.compress(torch.rand(1, 3, 64, 64))).shape == (1, 3, 64, 64)
    with pytest.raises(CodecError):
        QResVAE(blocks=[1, 1, 1, 1])


def test_roundtrip_is_the_float_models_eval_pass():
    """Real bytes decode to what the float model gives with rounded latents (the integer top-down path is the float
    one evaluated in fixed point), for every quality."""
    from codec.api import decode, encode_image

    m = _tiny()
    rgb = _image()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    for q in (1, 4):
        data = encode_image(rgb, m, quality=q)
        out = decode(data, m)
        assert out.shape == rgb.shape
        with torch.no_grad():
            ref = m(m.pad(x), torch.tensor([m.quality_lambdas()[q - 1]]))["x_hat"][..., :70, :90].clamp(0, 1)
        ref8 = (ref[0].permute(1, 2, 0) * 255).round().numpy()
        assert np.abs(out.astype(float) - ref8).mean() < 1.0
    with pytest.raises(CodecError, match="qualities 1 to 4"):
        encode_image(rgb, m, quality=5)


def test_progressive_decoding_reads_only_a_prefix():
    from codec.api import decode, encode_image
    from codec.bitstream import unpack

    m = _tiny()
    data = encode_image(_image(), m, quality=3)
    full = decode(data, m)
    n = m.num_latent_blocks
    outs = [decode(data, m, blocks=k) for k in range(n + 1)]
    assert np.array_equal(outs[-1], full)
    assert all(o.shape == full.shape for o in outs)
    assert np.abs(outs[0].astype(int) - full).mean() > np.abs(outs[n - 1].astype(int) - full).mean()
    header, payload = unpack(data)
    # the later streams are never read: dropping them leaves the prefix decodable
    cut = type(payload)(streams={k: v for k, v in payload.streams.items() if k in ("z0", "z1")}, ints=payload.ints,
                        checksum=payload.checksum, meta=payload.meta, bound=payload.bound)
    with torch.no_grad():
        assert m.decompress(cut, blocks=2).shape == (1, 3, 70, 90)
    bad = dict(payload.ints)
    bad["prefix"] = tuple(v ^ 1 for v in payload.ints["prefix"])
    with pytest.raises(DivergenceError, match="first 2 latent blocks"):
        m.decompress(type(payload)(streams=payload.streams, ints=bad), blocks=2)
    with pytest.raises(CodecError, match="--blocks"):
        decode(data, m, blocks=n + 1)


def test_forged_size_is_refused_before_decoding():
    from codec.api import decode, encode_image

    sys.path.insert(0, str(ROOT / "tests"))
    import fuzz

    sys.path.pop(0)
    m = _tiny()
    data = encode_image(_image(), m)
    f = fuzz.parse(data)
    for g in f["geometry"]:
        if g[0] in (b"height", b"width"):
            g[1] = 4096
    for e in f["ints"]:
        if e[0] == b"size":
            e[1] = [4096, 4096]
    with pytest.raises(BitstreamError, match="symbols"):
        decode(fuzz.serialise(f, None), m)


@pytest.mark.parametrize("block", ["conv", "convnext"])
def test_entropy_parameters_are_exact_across_kernels_and_threads(block):
    """The whole top-down path is integer (depthwise convolutions too): toggling oneDNN or the thread count changes
    neither the symbols nor any entropy parameter (every prior's table indexes and means, traced), only float
    pixels by at most 1."""
    from codec.api import decode, encode_image

    m = _tiny(1, block)
    data = encode_image(_image(64, 96, 1), m, quality=2)
    with intnet.Trace() as a:
        out_a = decode(data, m)
    mk, th = torch.backends.mkldnn.enabled, torch.get_num_threads()
    try:
        torch.backends.mkldnn.enabled = False
        torch.set_num_threads(1)
        with intnet.Trace() as b:
            out_b = decode(data, m)
    finally:
        torch.backends.mkldnn.enabled = mk
        torch.set_num_threads(th)
    assert a.count == b.count > 3 * m.num_latent_blocks and a.hexdigest() == b.hexdigest()
    assert np.abs(out_a.astype(int) - out_b.astype(int)).max() <= 1


def test_quality_bias_is_stored_integers():
    m = _tiny()
    qb = m.quality_bias
    assert qb.dtype == torch.int64 and qb.shape == (4, sum(r.pw1.out_channels for r in m._res_blocks()))
    assert not torch.equal(qb[0], qb[-1])


def test_trains_exports_and_codes_through_the_cli(tmp_path, capsys):
    """train/fit.py with the image data module (lambda sampled per image), codec export, then the CLI with
    --quality (the lambda of the one model) and --blocks (progressive decoding)."""
    from conftest import write_image_folders

    (tmp_path / "data").mkdir()
    write_image_folders(tmp_path / "data", {"train": 4, "val": 2}, (8, 8))
    args = [sys.executable, str(ROOT / "train" / "fit.py"), "fit", "--config",
            str(ROOT / "train" / "configs" / "qres-vae.yaml"), "--trainer.max_steps=2",
            "--trainer.val_check_interval=2", f"--trainer.default_root_dir={tmp_path / 'run'}",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'run'}",
            f"--trainer.callbacks.init_args.dirpath={tmp_path / 'run' / 'ck'}", "--trainer.enable_progress_bar=false",
            "--model.codec.init_args.widths=[8,8,8,8,8]", "--model.codec.init_args.zdims=[2,2,2,2,2]",
            "--model.codec.init_args.blocks=[1,1,1,1,1]", "--model.codec.init_args.prefix_drop=0.25",
            f"--data.init_args.train_dirs=[{tmp_path / 'data' / 'train'}]",
            f"--data.init_args.val_dir={tmp_path / 'data' / 'val'}", "--data.init_args.crop_size=64",
            "--data.init_args.val_crop_size=64", "--data.init_args.batch_size=2", "--data.init_args.repeats=1"]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    pt = tmp_path / "hv.pt"
    r = subprocess.run([sys.executable, "-m", "codec", "export", str(tmp_path / "run" / "ck" / "last.ckpt"), "-o",
                        str(pt)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    img = tmp_path / "data" / "val" / sorted(p.name for p in (tmp_path / "data" / "val").iterdir())[0]
    sizes = []
    for q in (1, 8):
        out = tmp_path / f"q{q}.cdc"
        r = subprocess.run([sys.executable, "-m", "codec", "encode", str(img), "-o", str(out), "--model", str(pt),
                            "--quality", str(q)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        sizes.append(out.stat().st_size)
    r = subprocess.run([sys.executable, "-m", "codec", "decode", str(tmp_path / "q8.cdc"), "-o",
                        str(tmp_path / "p.png"), "--blocks", "2"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "first 2 latent blocks" in r.stdout, r.stderr
    # the training checkpoint compared with itself on one Kodak image: one row each, BD-rate 0 against the first
    from codec.eval.reproduce import hvae_stages

    ck = str(tmp_path / "run" / "ck" / "last.ckpt")
    capsys.readouterr()
    assert hvae_stages.main([ck, ck, "--limit", "1", "--cache", str(tmp_path / "c")]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| `")]
    assert len(rows) == 4 and "| 0.25 |" in rows[1] and rows[1].endswith("| +0.0 % |"), rows
    assert rows[0] == rows[1] and len(list((tmp_path / "c").glob("*.json"))) == 1  # the second is the cached curve
    assert hvae_stages.main([ck, str(tmp_path / "none.ckpt")]) == 2
    import json

    # the exported file of the same weights: its step and prefix_drop from the training record, and the same curve
    # up to the export storing the weights in float16
    assert hvae_stages.main([ck, str(pt), "--limit", "1", "--cache", str(tmp_path / "c")]) == 0
    rows2 = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| `")]
    assert rows2[1].split("|")[2:4] == rows[0].split("|")[2:4], rows2
    c_ck, c_pt = ([json.loads(f.read_text()) for f in (tmp_path / "c").glob("*.json")])
    assert len(c_ck) == len(c_pt) == 8
    for a, b in zip(c_ck, c_pt):
        assert a["bpp"] == pytest.approx(b["bpp"], abs=1e-3) and a["psnr"] == pytest.approx(b["psnr"], abs=0.01)
    # --against: a second BD-rate column against a results JSON. Two training steps give a flat curve, so the
    # cached curves are replaced by a monotone one, and the anchor is that curve at 10 % more bits
    synth = [{"lambda": 0.01 * k, "bpp": 0.1 * k, "psnr": 25.0 + 2 * k, "coarse_bpp": 0.01} for k in range(1, 9)]
    for f in (tmp_path / "c").glob("*.json"):
        f.write_text(json.dumps(synth))
    anchor = tmp_path / "anchor.json"
    anchor.write_text(json.dumps({"name": "more bits", "results": {"bpp": [1.1 * p["bpp"] for p in synth],
                                                                     "psnr-rgb": [p["psnr"] for p in synth]}}))
    assert hvae_stages.main([ck, "--limit", "1", "--cache", str(tmp_path / "c"), "--against", str(anchor)]) == 0
    row = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| `")][0]
    assert row.endswith("| +0.0 % | -9.1 % |"), row
    assert hvae_stages.main([ck, "--against", str(tmp_path / "none.json")]) == 2


def test_fixed_rate_control_trains_at_one_lambda_only():
    """train_quality (the fixed-rate control of docs/image.md): every training image gets that quality's lambda; the
    default samples the whole range; an out-of-range quality is refused."""
    m = QResVAE(**TINY, train_quality=3)
    lam = m.sample_lambda(64, "cpu")
    assert torch.allclose(lam, torch.full((64,), m.quality_lambdas()[2]))
    v = QResVAE(**TINY).sample_lambda(256, "cpu")
    lo, hi = QResVAE(**TINY).lmbda_range
    assert v.min() >= lo and v.max() <= hi and v.std() > 0
    assert QResVAE.training_record({"train_quality": 3, "lmbda_range": [lo, hi]}, {}, {})["train_quality"] == 3
    with pytest.raises(CodecError, match="train_quality"):
        QResVAE(**TINY, train_quality=5)


def test_embed_range_keeps_known_lambdas_where_they_were():
    """A stage that widens the lambda range with embed_range set to the old range embeds every lambda the old model
    knew exactly as it did (its integer quality bias at the shared top lambda too); without it the embedding moves.
    The setting is part of the config, and a bad one is refused."""
    old = _tiny()
    wide = QResVAE(**{**TINY, "lmbda_range": [old.lmbda_range[0] / 4, old.lmbda_range[1]], "qualities": 5},
                   embed_range=list(old.lmbda_range))
    wide.load_state_dict({k: v for k, v in old.state_dict().items() if k != "quality_bias"}, strict=False)
    lam = torch.tensor(old.quality_lambdas())
    assert torch.equal(wide.embedding(lam), old.embedding(lam))
    assert torch.equal(wide._quality_bias()[-1], old.quality_bias[-1])  # the top lambda, shared by both
    assert wide.embed_position(torch.log(torch.tensor(wide.lmbda_range[0]))) < 0
    moved = QResVAE(**{**TINY, "lmbda_range": list(wide.lmbda_range), "qualities": 5})
    moved.load_state_dict(wide.state_dict())
    assert not torch.allclose(moved.embedding(lam), old.embedding(lam))
    assert QResVAE.from_config(wide.config()).embed_range == tuple(old.lmbda_range)
    assert "embed_range" not in old.config()  # unset: configs (and fingerprints) of earlier models unchanged
    with pytest.raises(CodecError, match="embed_range"):
        QResVAE(**TINY, embed_range=[0.1, 0.01])


def test_ste_quantization_trains_on_what_coding_sends():
    """quantization: ste rounds the latents around their prior means in training, as coding does, and still passes a
    gradient to the encoder; the default adds noise; a bad value is refused."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    lam = torch.full((2,), 0.01)
    ste = QResVAE(**TINY, quantization="ste")
    ref = ste(x, lam)  # training mode
    ste.eval()
    with torch.no_grad():
        rounded = ste(x, lam)
    assert all(torch.equal(a, b) for a, b in zip(ref["likelihoods"], rounded["likelihoods"]))
    assert torch.equal(ref["x_hat"], rounded["x_hat"])
    ste.train()
    ste.rate_distortion(x, ste(x, lam))["loss"].backward()
    assert ste.stem.weight.grad.abs().sum() > 0  # straight through to the encoder
    noisy = QResVAE(**TINY)
    noisy.load_state_dict(ste.state_dict())
    assert not torch.equal(noisy(x, lam)["likelihoods"][0], ref["likelihoods"][0])
    assert QResVAE.training_record({"quantization": "ste"}, {}, {})["quantization"] == "ste"
    with pytest.raises(CodecError, match="quantization"):
        QResVAE(**TINY, quantization="round")


def test_prefix_training_codes_what_a_prefix_decode_reads():
    """prefix_drop: a training image cut after k blocks gets the prior mean for the later latents and pays no bits
    for them (what ``decode --blocks k`` reads); evaluation and prefix_drop=0 use every block; out-of-range values
    are refused."""
    torch.manual_seed(0)
    m = QResVAE(**TINY, prefix_drop=0.5)
    x = torch.rand(6, 3, 64, 64)
    m.train()
    torch.manual_seed(3)
    cut = m._prefix_cut(6, "cpu")
    assert cut is not None and 1 <= int(cut.min()) and int(cut.max()) <= m.num_latent_blocks
    torch.manual_seed(3)
    out = m(x, torch.full((6,), 0.01))
    for k, lik in enumerate(out["likelihoods"]):
        dropped = k >= cut
        assert torch.all(lik[dropped] == 1)
        assert torch.all(lik[~dropped] < 1)
    assert any(int(c) < m.num_latent_blocks for c in cut) and any(int(c) == m.num_latent_blocks for c in cut)
    m.eval()
    assert m._prefix_cut(6, "cpu") is None
    assert QResVAE(**TINY)._prefix_cut(6, "cpu") is None
    assert QResVAE.training_record({"prefix_drop": 0.25}, {}, {})["prefix_drop"] == 0.25
    with pytest.raises(CodecError, match="prefix_drop"):
        QResVAE(**TINY, prefix_drop=1.0)


def test_rate_cost_interpolates_bits_at_equal_psnr():
    from codec.eval.reproduce.hvae_rate_cost import bpp_at_psnr

    curve = {1: {"bpp": 0.5, "psnr": 30.0}, 2: {"bpp": 2.0, "psnr": 34.0}}
    assert bpp_at_psnr(curve, 32.0) == pytest.approx(1.0)  # midway in log-bpp
    assert bpp_at_psnr(curve, 30.0) == pytest.approx(0.5)
    assert bpp_at_psnr(curve, 35.0) is None and bpp_at_psnr(curve, 29.0) is None


def test_rate_cost_names_a_missing_run(tmp_path, capsys):
    from codec.eval.reproduce.hvae_rate_cost import main

    assert main(["--variable", str(tmp_path / "none.ckpt"), "--limit", "1"]) == 2
    assert "no variable checkpoint" in capsys.readouterr().err


def test_log_loss_balance_weighs_every_lambda_alike():
    """loss_balance: log trains on the gradient of the mean log RD loss, each image's gradient divided by its own
    loss, so an image at the top of the range no longer outweighs one at the bottom; the logged loss stays the plain
    RD loss; the default trains on that; a bad value is refused and the choice is recorded."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    lam = torch.tensor([0.0005, 0.5])
    m = QResVAE(**TINY, loss_balance="log")
    m.eval()  # rounded latents: the same pass every time
    rd = m.rate_distortion(x, m(x, lam))
    assert float(rd["objective"].detach()) == pytest.approx(1.0)
    rd["objective"].backward()
    got = [p.grad.clone() for p in m.parameters() if p.grad is not None]
    m.zero_grad()
    losses = []
    for i in range(2):  # each image on its own, its gradient divided by its loss: the same update
        li = m.rate_distortion(x[i:i + 1], m(x[i:i + 1], lam[i:i + 1]))["loss"]
        losses.append(float(li.detach()))
        (li / losses[-1] / 2).backward()
    want = [p.grad.clone() for p in m.parameters() if p.grad is not None]
    assert len(got) == len(want) and all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(got, want))
    assert float(rd["loss"].detach()) == pytest.approx(sum(losses) / 2, rel=1e-5)
    assert losses[1] > 10 * losses[0]  # what the plain mean would weigh the top image by
    plain = QResVAE(**TINY)
    plain.load_state_dict(m.state_dict())
    plain.eval()
    rd = plain.rate_distortion(x, plain(x, lam))
    assert torch.equal(rd["objective"], rd["loss"])
    assert QResVAE.training_record({"loss_balance": "log"}, {}, {})["loss_balance"] == "log"
    assert "loss_balance" not in QResVAE.training_record({"loss_balance": "none"}, {}, {})
    with pytest.raises(CodecError, match="loss_balance"):
        QResVAE(**TINY, loss_balance="sqrt")


def test_bf16_autocast_keeps_latents_and_pixels_in_float32():
    """Under ``trainer.precision: bf16-mixed`` (CPU autocast) the latent means and scales, the likelihoods and the
    output pixels stay float32, so the rate and distortion are those of float32 up to bfloat16 in the features."""
    m = _tiny()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    lam = torch.tensor([0.001, 0.1])
    ref = m.rate_distortion(x, m(x, lam))
    seen = []
    hooks = [layer.register_forward_hook(lambda mod, i, o: seen.append(o.dtype))
             for bl in m.latents for b in bl for layer in (b.prior, b.post_out)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x, lam)
        rd = m.rate_distortion(x, out)
    for h in hooks:
        h.remove()
    assert len(seen) == 2 * m.num_latent_blocks and set(seen) == {torch.float32}
    assert out["x_hat"].dtype == torch.float32 and all(lik.dtype == torch.float32 for lik in out["likelihoods"])
    assert float(rd["bpp"].detach()) == pytest.approx(float(ref["bpp"].detach()), rel=0.05)
    assert float(rd["mse"].detach()) == pytest.approx(float(ref["mse"].detach()), rel=0.05)
