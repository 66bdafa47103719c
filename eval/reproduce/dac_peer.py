"""Peer check of the RVQGAN implementation against DAC's own code (descript-audio-codec 1.0.0).

    pip install descript-audio-codec==1.0.0      # the optional `dac` extra (see the README's install notes)
    python -m codec.eval.reproduce.dac_peer [--steps 1200] [--warmup 1000] [--batch 8] [--which both|ours|dac|eval]

Two generators of the same size are trained on the same batches, with the same optimiser and schedule:

- ours: :class:`codec.codecs.audio.RVQGAN` with its discriminators and losses (``generator_loss`` /
  ``discriminator_loss``, the code ``train/fit.py`` runs);
- DAC's: ``dac.model.DAC`` and ``dac.model.Discriminator`` with DAC's losses (``MelSpectrogramLoss`` with its
  base.yml settings, ``GANLoss``) and DAC's loss weights (mel 15, adversarial 1, feature matching 2, commitment
  0.25, codebook 1), the same as ours.

Both: 16 kHz mono, encoder_dim 16, rates 2/4/5/8 (hop 320), decoder_dim 192, 12 codebooks x 1024, 8-dim codes,
quantizer dropout 0.5, discriminators of DAC's width (periods 2/3/5/7/11, STFT windows 2048/1024/512, 5 bands),
AdamW lr 5e-4 betas (0.8, 0.99) with exponential decay 0.9999, gradient clipping 1000 (generator) and 10
(discriminators). The first ``--warmup`` batches train on mel + VQ losses, the rest add the GAN terms. Batches:
``--batch`` random 0.4 s excerpts of the training speech (LibriSpeech train-clean-100 + LJSpeech LJ001-0001..0024,
loudness-normalised to -24 LUFS), drawn from one seeded generator, so both models see the same audio in the same
order.

``--which ours`` and ``--which dac`` train one side each (two processes can run side by side); each saves
``runs/dac_peer/<side>.pt`` every 50 batches and resumes from it, and keeps the end of the mel-only warm-up as
``runs/dac_peer/<side>-warmup.pt`` (1,000 batches is the length of our ``dac-mel`` recipe run). ``--which eval``
(or the end of ``both``) measures both, at both points, on held-out speech (``--set``) and writes
``docs/results/tables/dac_peer.md``.

DAC 1.0.0's transposed convolutions lose one sample per odd-stride stage (8 samples per 320-sample hop here); its
output is zero-padded at the end to the input length, as the evaluation of any decoder that returns fewer samples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from codec.config import repo_root

TRAIN = ["data:audio/speech/librispeech_train100/*.flac", "data:audio/speech/ljspeech/LJ001-000[1-9].wav",
         "data:audio/speech/ljspeech/LJ001-001?.wav", "data:audio/speech/ljspeech/LJ001-002[0-4].wav"]
SIZE = dict(encoder_dim=16, encoder_rates=[2, 4, 5, 8], decoder_dim=192, decoder_rates=[8, 5, 4, 2], n_codebooks=12,
            codebook_size=1024, codebook_dim=8, quantizer_dropout=0.5, sample_rate=16000)
LR, BETAS, GAMMA = 5e-4, (0.8, 0.99), 0.9999
W_MEL, W_ADV, W_FM, W_COMMIT, W_CB = 15.0, 1.0, 2.0, 0.25, 1.0


class Batches:
    """Seeded random excerpts of the training speech, drawn in proportion to file length."""

    def __init__(self, excerpt: int, batch: int, seed: int = 1):
        from codec.train.data import list_audio, load_audio_as

        self.sigs = [load_audio_as(f, 16000, 1, -24.0).float() for f in list_audio(TRAIN)]
        self.sigs = [s for s in self.sigs if s.shape[-1] > excerpt]
        self.weights = torch.tensor([float(s.shape[-1]) for s in self.sigs])
        self.excerpt, self.batch, self.seed = excerpt, batch, seed

    def get(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        files = torch.multinomial(self.weights, self.batch, replacement=True, generator=g)
        out = []
        for f in files.tolist():
            s = self.sigs[f]
            o = int(torch.randint(s.shape[-1] - self.excerpt + 1, (1,), generator=g))
            out.append(s[:, o:o + self.excerpt])
        return torch.stack(out)


class Ours:
    name = "ours (codec RVQGAN)"

    def __init__(self):
        from codec.codecs.audio import RVQGAN

        self.gen = RVQGAN(channels=1, **SIZE, mpd_width=32, mrd_width=32, lr=LR, lr_gamma=GAMMA, disc_start=0,
                          mel_weight=W_MEL, adv_weight=W_ADV, fm_weight=W_FM, commitment_weight=W_COMMIT,
                          codebook_weight=W_CB)
        self.parts = torch.nn.ModuleDict(self.gen.training_parts())
        self.disc = self.parts["discriminator"]

    def d_loss(self, x, out):
        return self.gen.discriminator_loss(self.disc, x, out["x_hat"])

    def forward(self, x):
        return self.gen(x)

    def g_loss(self, x, out, gan):
        loss, logs = self.gen.generator_loss(self.parts, x, out, gan)
        return loss, float(logs["train/mel"])

    def decode(self, x, n_q):
        return self.gen.from_tokens(self.gen.tokens(x, n_q), x.shape[-1])


class Theirs:
    name = "DAC 1.0.0 (dac.model.DAC)"

    def __init__(self):
        from dac.model import DAC, Discriminator
        from dac.nn.loss import GANLoss, MelSpectrogramLoss

        self.gen = DAC(**SIZE)
        self.disc = Discriminator(sample_rate=16000)
        # DAC's conf/base.yml mel loss
        self.mel = MelSpectrogramLoss(n_mels=[5, 10, 20, 40, 80, 160, 320],
                                      window_lengths=[32, 64, 128, 256, 512, 1024, 2048], mel_fmin=[0.0] * 7,
                                      mel_fmax=[None] * 7, pow=1.0, clamp_eps=1e-5, mag_weight=0.0)
        self.gan = GANLoss(self.disc)

    @staticmethod
    def _sig(x):
        from audiotools import AudioSignal

        return AudioSignal(x, 16000)

    def forward(self, x):
        out = self.gen(x, 16000)
        y = out["audio"]
        if y.shape[-1] < x.shape[-1]:
            y = torch.nn.functional.pad(y, (0, x.shape[-1] - y.shape[-1]))
        return {"x_hat": y, "commitment": out["vq/commitment_loss"], "codebook": out["vq/codebook_loss"]}

    def d_loss(self, x, out):
        return self.gan.discriminator_loss(self._sig(out["x_hat"]), self._sig(x))

    def g_loss(self, x, out, gan):
        rec, sig = self._sig(out["x_hat"]), self._sig(x)
        mel = self.mel(rec, sig)
        loss = W_MEL * mel + W_COMMIT * out["commitment"] + W_CB * out["codebook"]
        if gan:
            adv, fm = self.gan.generator_loss(rec, sig)
            loss = loss + W_ADV * adv + W_FM * fm
        return loss, float(mel)

    def decode(self, x, n_q):
        z = self.gen.encode(self.gen.preprocess(x, 16000), n_q)[0]
        return self.gen.decode(z)


SIDES = {"ours": Ours, "dac": Theirs}


def train(side: str, args) -> None:
    torch.manual_seed(1)
    m = SIDES[side]()
    opt_g = torch.optim.AdamW(m.gen.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.AdamW(m.disc.parameters(), lr=LR, betas=BETAS)
    sch_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, GAMMA)
    sch_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, GAMMA)
    ck = Path(args.dir) / f"{side}.pt"
    state = {"step": 0, "seconds": 0.0, "log": []}
    if ck.is_file():
        s = torch.load(ck, map_location="cpu", weights_only=False)
        m.gen.load_state_dict(s["gen"])
        m.disc.load_state_dict(s["disc"])
        for o, k in ((opt_g, "opt_g"), (opt_d, "opt_d"), (sch_g, "sch_g"), (sch_d, "sch_d")):
            o.load_state_dict(s[k])
        state = s["state"]
    data = Batches(args.excerpt, args.batch)
    m.gen.train()
    m.disc.train()

    def save():
        ck.parent.mkdir(parents=True, exist_ok=True)
        tmp = ck.with_suffix(".tmp")
        torch.save({"gen": m.gen.state_dict(), "disc": m.disc.state_dict(), "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(), "sch_g": sch_g.state_dict(), "sch_d": sch_d.state_dict(),
                    "state": state}, tmp)
        tmp.replace(ck)

    while state["step"] < args.steps:
        i = state["step"]
        t0 = time.monotonic()
        x = data.get(i)
        gan = i >= args.warmup
        out = m.forward(x)
        if gan:
            d = m.d_loss(x, out)
            opt_d.zero_grad(set_to_none=True)
            d.backward()
            torch.nn.utils.clip_grad_norm_(m.disc.parameters(), 10.0)
            opt_d.step()
            sch_d.step()
        loss, mel = m.g_loss(x, out, gan)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.gen.parameters(), 1000.0)
        opt_g.step()
        sch_g.step()
        state["seconds"] += time.monotonic() - t0
        state["step"] = i + 1
        state["log"].append((i, round(mel, 4)))
        if state["step"] % 50 == 0 or state["step"] == args.steps:
            save()
            print(f"{side} step {state['step']} mel {mel:.3f} {state['seconds']:.0f} s", flush=True)
        if state["step"] == args.warmup < args.steps:
            # the end of the mel-only warm-up is measured too: it is the whole of a mel-only run of that length
            save()
            ck.with_name(f"{side}-warmup.pt").write_bytes(ck.read_bytes())


def evaluate(args) -> dict:
    from codec.eval.datasets import resolve
    from codec.eval.reproduce.common import results_dirs
    from codec.eval.reproduce.speech_recipes import heldout_audio, heldout_scores

    ds = resolve(args.set, limit=args.limit)
    signals = heldout_audio(ds.items, 16000)
    n_qs = [int(v) for v in args.n_q.split(",")]
    rows = {}
    for side, cls in SIDES.items():
        ck = Path(args.dir) / f"{side}.pt"
        if not ck.is_file():
            raise SystemExit(f"dac_peer: {ck} is missing; train it first (--which {side})")
        # the end of the mel-only warm-up (kept by train()) and the end of the run
        for key, path in ((f"{side}-warmup", ck.with_name(f"{side}-warmup.pt")), (side, ck)):
            if not path.is_file():
                continue
            s = torch.load(path, map_location="cpu", weights_only=False)
            if key.endswith("-warmup") and s["state"]["step"] != args.warmup:
                print(f"dac_peer: {path} is from a warm-up of {s['state']['step']} batches, not {args.warmup}; "
                      "left out", file=sys.stderr)
                continue
            m = cls()
            m.gen.load_state_dict(s["gen"])
            m.gen.eval()
            log = s["state"]["log"]
            steps = s["state"]["step"]
            rows[key] = {"name": cls.name, "steps": steps, "gan_steps": max(0, steps - args.warmup),
                         "seconds": s["state"]["seconds"], "params": sum(p.numel() for p in m.gen.parameters()),
                         "final_mel": sum(v for _, v in log[-50:]) / max(1, len(log[-50:])),
                         "scores": {str(k): v for k, v in heldout_scores(m.decode, signals, 16000, n_qs).items()}}
            print(key, json.dumps(rows[key]), flush=True)
    res = {"set": args.set, "files": len(ds.items), "warmup": args.warmup, "batch": args.batch,
           "excerpt": args.excerpt, "runs": rows}
    out = repo_root() / "results" / "dac_peer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    lines = [f"Same size, data, batches ({args.batch} x {args.excerpt} samples), optimiser and steps; mel + VQ losses "
             f"for the first {args.warmup} batches, then the GAN terms. Held-out set `{args.set}` "
             f"({len(ds.items)} files), decoded from the first n_q codebooks. Regenerate: "
             f"`python -m codec.eval.reproduce.dac_peer --steps {args.steps} --warmup {args.warmup} --n-q {args.n_q}` "
             "(the two sides trained side by side with other runs on 2 CPU cores, one thread each).\n",
             "| implementation | generator params | batches (of them GAN) | train s (1 thread) | training mel loss "
             "(last 50) | n_q | mel distance | SI-SDR [dB] | PESQ-WB | STOI |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows.values(), key=lambda r: (r["steps"], r["name"] != Ours.name)):
        for q, s in r["scores"].items():
            lines.append(f"| {r['name']} | {r['params'] / 1e6:.2f} M | {r['steps']} ({r['gan_steps']}) | "
                         f"{r['seconds']:.0f} | "
                         f"{r['final_mel']:.3f} | {q} | {s['mel-distance']:.3f} | {s['si-sdr']:.2f} | "
                         f"{s.get('pesq', float('nan')):.2f} | {s.get('stoi', float('nan')):.3f} |")
    (results_dirs()[1] / "dac_peer.md").write_text("\n".join(lines) + "\n")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--excerpt", type=int, default=6400)
    ap.add_argument("--which", choices=["both", "ours", "dac", "eval"], default="both")
    ap.add_argument("--dir", default=str(repo_root() / "runs" / "dac_peer"))
    ap.add_argument("--set", default="speech-test-subset")
    ap.add_argument("--n-q", default="3,6,12")
    ap.add_argument("--limit", type=int, default=None, help="evaluate on the first N held-out files only")
    args = ap.parse_args(argv)
    try:
        import dac  # noqa: F401
    except ImportError:
        print("dac_peer: needs descript-audio-codec 1.0.0 (pip install descript-audio-codec==1.0.0)", file=sys.stderr)
        return 2
    if args.which in ("both", "ours", "dac"):
        for side in (("ours", "dac") if args.which == "both" else (args.which,)):
            train(side, args)
    if args.which in ("both", "eval"):
        evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
