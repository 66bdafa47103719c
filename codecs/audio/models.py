"""RVQGAN: the Improved RVQGAN (DAC) audio codec on the codec base, mono to multichannel, with entropy-coded
tokens.

    audio (B, C, T) in [-1, 1] -> pad T to a multiple of the hop -> Encoder -> RVQ (n_codebooks x codebook_size,
    factorised codebook_dim codes) -> tokens (B, n_q, frames) -> codec.entropy (TokenPrior tables) -> bytes
    bytes -> tokens -> RVQ.from_codes -> Decoder -> crop to T

Training (manual optimisation, one G and one D step per batch): generator loss = mel * 15 + adversarial (LSGAN)
* 1 + feature matching * 2 + commitment * 0.25 + codebook * 1; AdamW (lr, betas 0.8/0.99) with exponential decay.
The discriminators switch on at ``disc_start`` steps: before that the generator trains on mel + VQ losses alone
(the sensible recipe on a CPU, where the GAN step costs several times the mel-only step).

Variable bitrate: quantizer dropout trains every prefix of the codebooks; ``compress(x, n_q=...)`` codes the first
n_q (``kbps`` in the CLI maps to n_q). Long signals are coded in chunks of ``chunk`` frames with ``margin`` frames
of context on each side, in bounded memory; with the margin covering the receptive field the chunked result equals
whole-signal coding (no seams).

Optional f0 track (``f0_bins``, Vocos decoder only): the encoder also measures the pitch of each frame (YIN,
:mod:`codec.codecs.audio.pitch`) and codes it as one integer per frame (0 unvoiced, else a log-spaced level) in a
stream of its own. The decoder's backbone sees it, and with ``f0_harmonics`` it drives a bank of harmonic
oscillators whose amplitudes the decoder predicts, added to the iSTFT output: the pitch harmonics of voiced speech
come from the oscillators instead of having to be learned bin by bin. ``tokens()`` returns the track as the last row.

Token prior (:class:`codec.entropy.tokens.TokenPrior`): per codebook, a categorical distribution of the code given
a cluster of the coarser codebook's code in the same frame (codebook 0: of the previous frame's code), fitted on the
training audio after training and frozen into CdfTables at export.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from codec.bitstream import Payload
from codec.codecs.base import CodecModule, as_batch, pad_to, register_codec
from codec.codecs.audio.layers import (ComplexSTFTLoss, Decoder, Discriminator, Encoder, LogMagSTFTLoss,
                                      MelLoss, ResidualVectorQuantize, VocosDecoder, neg_si_sdr)
from codec.codecs.audio.pitch import F0Quantizer, frame_phase, yin
from codec.entropy import CdfTables
from codec.entropy.tokens import TokenPrior
from codec.errors import BitstreamError, CheckpointError, CodecError

# state-dict prefixes of the training-only parts (training_parts): never shipped, skipped when weights are loaded
TRAINING_ONLY = ("discriminator.", "mel_loss.", "stft_loss.", "logmag_loss.")


@register_codec
class RVQGAN(CodecModule):
    codec_name = "rvqgan"
    modality = "audio"
    single_table = "tokens"
    #: training statistics: the token counts (the frozen tables replace them) and the GAN switch-on counter
    fingerprint_skip = ("prior_counts", "f0_counts", "train_batches")
    not_shipped = ("prior_counts", "f0_counts", "train_batches")
    manual_optimization = True
    export_options = frozenset({"prior_contexts", "prior_alpha", "prior_mode", "prior_uniform", "prior_augment"})
    export_options_kind = "token-prior"
    #: a model with the f0 track may start from weights without it: its f0 input (zero) and oscillator head (a
    #: fixed falling envelope) keep their initialisation
    init_from_new = ("decoder.f0_embed.", "decoder.harm.")
    #: ``--weight-bits 8`` keeps the quantiser (codebooks and their projections, 0.3 to 0.4 MB) in float16
    int8_skip = ("quantizer.",)

    def __init__(self, channels: int = 1, sample_rate: int = 16000, encoder_dim: int = 32,
                 encoder_rates: list | None = None, latent_dim: int | None = None, decoder_dim: int = 256,
                 decoder_rates: list | None = None, n_codebooks: int = 12, codebook_size: int = 1024,
                 codebook_dim: int = 8, quantizer_dropout: float = 0.5, chunk: int = 256, margin: int = 16,
                 input_gain: float = 1.0, prior_contexts: int = 32, prior_alpha: float = 256.0,
                 prior_mode: str = "coarse", prior_uniform: float = 0.0, prior_augment: dict | None = None,
                 lr: float = 1e-4, betas: list | None = None, lr_gamma: float = 0.999996, disc_start: int = 0,
                 disc_lr: float | None = None, mel_weight: float = 15.0, adv_weight: float = 1.0,
                 fm_weight: float = 2.0, commitment_weight: float = 0.25, codebook_weight: float = 1.0,
                 mpd_width: int = 32, mrd_width: int = 32, grad_clip: float = 1000.0,
                 decoder_type: str = "dac", vocos_dim: int = 384, vocos_layers: int = 8, n_fft: int | None = None,
                 stft_weight: float = 0.0, wave_weight: float = 0.0, sisdr_weight: float = 0.0,
                 stft_windows: list | None = None, logmag_weight: float = 0.0, logmag_windows: list | None = None,
                 f0_bins: int = 0, f0_harmonics: int = 0, f0_bands: int = 64, istft_hop: int | None = None,
                 init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        encoder_rates = list(encoder_rates or [2, 4, 5, 8])
        decoder_rates = list(decoder_rates or encoder_rates[::-1])
        if math.prod(encoder_rates) != math.prod(decoder_rates):
            raise CodecError(f"encoder rates {encoder_rates} and decoder rates {decoder_rates} give different hops")
        if int(channels) < 1 or int(sample_rate) < 1 or int(n_codebooks) < 1 or int(codebook_size) < 2:
            raise CodecError("channels, sample_rate, n_codebooks must be positive and codebook_size at least 2")
        if int(decoder_dim) % (2 ** len(decoder_rates)):
            raise CodecError(f"decoder_dim {decoder_dim} must be divisible by 2**{len(decoder_rates)}")
        self.channels, self.sample_rate = int(channels), int(sample_rate)
        self.encoder_dim, self.encoder_rates = int(encoder_dim), encoder_rates
        self.decoder_dim, self.decoder_rates = int(decoder_dim), decoder_rates
        self.latent_dim = int(latent_dim or encoder_dim * 2 ** len(encoder_rates))
        self.n_codebooks, self.codebook_size, self.codebook_dim = int(n_codebooks), int(codebook_size), int(codebook_dim)
        self.chunk, self.margin = int(chunk), int(margin)
        self.input_gain = float(input_gain)
        if self.chunk < 1 or self.margin < 0:
            raise CodecError("chunk must be positive and margin non-negative")
        self.hop = math.prod(encoder_rates)
        self.encoder = Encoder(self.channels, self.encoder_dim, encoder_rates, self.latent_dim)
        self.quantizer = ResidualVectorQuantize(self.latent_dim, self.n_codebooks, self.codebook_size,
                                                self.codebook_dim, float(quantizer_dropout))
        if decoder_type not in ("dac", "vocos"):
            raise CodecError(f"decoder_type must be 'dac' (up-sampling convolutions) or 'vocos' (iSTFT head), "
                             f"not {decoder_type!r}")
        self.decoder_type = decoder_type
        self.f0_bins, self.f0_harmonics, self.f0_bands = int(f0_bins), int(f0_harmonics), int(f0_bands)
        if self.f0_bins and (decoder_type != "vocos" or not 3 <= self.f0_bins <= 4096):
            raise CodecError("f0_bins (the coded f0 track) needs decoder_type 'vocos' and 3..4096 bins")
        if self.f0_harmonics and not self.f0_bins:
            raise CodecError("f0_harmonics (the harmonic oscillators) need the f0 track: set f0_bins")
        self.f0q = F0Quantizer(self.f0_bins) if self.f0_bins else None
        if decoder_type == "vocos":
            self.vocos_dim, self.vocos_layers = int(vocos_dim), int(vocos_layers)
            self.istft_hop = int(istft_hop or self.hop)
            self.n_fft = int(n_fft or 4 * self.istft_hop)
            try:
                self.decoder = VocosDecoder(self.latent_dim, self.channels, self.vocos_dim, self.vocos_layers,
                                            self.hop, self.n_fft, f0=bool(self.f0_bins),
                                            harmonics=self.f0_harmonics, bands=self.f0_bands,
                                            sample_rate=self.sample_rate, istft_hop=self.istft_hop)
            except ValueError as e:
                raise CodecError(str(e)) from None
        else:
            self.decoder = Decoder(self.latent_dim, self.channels, self.decoder_dim, decoder_rates)
        # DAC's init: zero biases in the generator. With PyTorch's default uniform biases the encoder output at
        # init is dominated by the accumulated biases, every frame points the same way, and the codebooks collapse.
        with torch.no_grad():
            for mod in (*self.encoder.modules(), *self.quantizer.modules(), *self.decoder.modules()):
                if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and mod.bias is not None:
                    mod.bias.zero_()
        self.prior = TokenPrior(self.n_codebooks, self.codebook_size, int(prior_contexts), float(prior_alpha),
                                prior_mode, float(prior_uniform))
        self.prior_augment = self._check_augment(prior_augment)
        self.register_buffer("prior_counts", torch.zeros(self.prior.count_shape, dtype=torch.float64))
        self.register_buffer("prior_map", torch.zeros(self.n_codebooks, self.codebook_size, dtype=torch.int32))
        self.register_buffer("train_batches", torch.zeros((), dtype=torch.int64))  # GAN switch-on counter
        if self.f0_bins:
            # the f0 track's prior: its symbol given the previous frame's (unvoiced, or voiced within 2 levels)
            self.f0_prior = TokenPrior(1, self.f0_bins, 1 + self.f0_bins // 2, float(prior_alpha), "prev", 0.02)
            cmap = np.zeros((1, self.f0_bins), dtype=np.int32)
            cmap[0, 1:] = 1 + (np.arange(self.f0_bins - 1) // 2)
            self.f0_cmap = cmap
            self.register_buffer("f0_counts", torch.zeros(self.f0_prior.count_shape, dtype=torch.float64))
            self.single_table = None  # tokens and f0 tables, both in the fingerprint
        if init_from:
            self.init_from(init_from)

    # ------------------------------------------------------------------------------------------------ config
    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def kbps(self, n_q: int) -> float:
        """Nominal (fixed-length token) bitrate with ``n_q`` codebooks."""
        return n_q * math.log2(self.codebook_size) * self.frame_rate / 1000

    def codebooks_for_kbps(self, kbps: float) -> int:
        """The most codebooks whose nominal rate is at most ``kbps``; a rate below one codebook's or above all of
        them is refused (never silently capped)."""
        per = self.kbps(1)
        if not math.isfinite(float(kbps)):
            raise CodecError(f"kbps must be a finite number, not {kbps}")
        n = int(math.floor(float(kbps) / per + 1e-9))
        if n < 1:
            raise CodecError(f"{self.model_name_or_class()} codes at least {per:.2f} kbps (one codebook); "
                             f"asked for {kbps:g}")
        if n > self.n_codebooks and float(kbps) > self.kbps(self.n_codebooks) + 1e-9:
            raise CodecError(f"{self.model_name_or_class()} codes at most {self.kbps(self.n_codebooks):.2f} kbps "
                             f"({self.n_codebooks} codebooks); asked for {kbps:g}")
        return min(n, self.n_codebooks)

    def config(self) -> dict:
        return {"class": type(self).__name__, "channels": self.channels, "sample_rate": self.sample_rate,
                "encoder_dim": self.encoder_dim, "encoder_rates": list(self.encoder_rates),
                "latent_dim": self.latent_dim, "decoder_dim": self.decoder_dim,
                "decoder_rates": list(self.decoder_rates), "n_codebooks": self.n_codebooks,
                "codebook_size": self.codebook_size, "codebook_dim": self.codebook_dim, "chunk": self.chunk,
                "margin": self.margin, "input_gain": self.input_gain,
                **({"decoder_type": "vocos", "vocos_dim": self.vocos_dim, "vocos_layers": self.vocos_layers,
                    "n_fft": self.n_fft, **({"istft_hop": self.istft_hop} if self.istft_hop != self.hop else {})}
                   if self.decoder_type == "vocos" else {}),
                **({"f0_bins": self.f0_bins, "f0_harmonics": self.f0_harmonics, "f0_bands": self.f0_bands}
                   if self.f0_bins else {}), "prior_contexts": self.prior.contexts, "prior_alpha": self.prior.alpha,
                "prior_mode": self.prior.mode, **({"prior_uniform": self.prior.uniform} if self.prior.uniform else {}),
                **({"prior_augment": self.prior_augment} if self.prior_augment else {})}

    def _optional_key(self, key: str) -> bool:
        # training-only parts of older training checkpoints, and the statistics the frozen tables replace
        return key in self.not_shipped or key.startswith(TRAINING_ONLY)

    def init_from(self, path) -> None:
        """As the base; a Vocos head with sub-frames (``istft_hop``) may start from a head without them, which
        :meth:`VocosDecoder.head_from` maps onto the new frames (the rest of the weights load as they are)."""
        from codec.codecs.base import read_state_dict

        sd = read_state_dict(path)
        w, b = sd.get("decoder.out.weight"), sd.get("decoder.out.bias")
        if (self.decoder_type == "vocos" and w is not None and b is not None
                and w.shape != self.decoder.out.weight.shape and self.decoder.sub > 1):
            n_old = w.shape[0] // self.channels - 2
            try:
                self.decoder.head_from(w, b, n_old)
            except ValueError as e:
                raise CheckpointError(f"init_from: {path}: {e}") from None
            sd["decoder.out.weight"] = self.decoder.out.weight.detach().clone()
            sd["decoder.out.bias"] = self.decoder.out.bias.detach().clone()
        super().init_from(path, sd)

    def load_weights(self, state_dict: dict) -> None:
        super().load_weights({k: v for k, v in state_dict.items()
                              if not k.startswith(TRAINING_ONLY)})

    @classmethod
    def training_record(cls, hparams: dict, data: dict, checkpoint: dict) -> dict:
        steps = int(checkpoint.get("global_step", 0))
        gan = (f"; GAN (adv x{hparams.get('adv_weight')}, feature matching x{hparams.get('fm_weight')}) from batch "
               f"{hparams.get('disc_start')}" if int(hparams.get("disc_start") or 0) < steps else
               "; discriminators never switched on (disc_start beyond the steps run)")
        sd = checkpoint.get("state_dict", {})
        return {**super().training_record(hparams, data, checkpoint),
                "loss": f"mel x{hparams.get('mel_weight')} + commitment x{hparams.get('commitment_weight')} + "
                        f"codebook x{hparams.get('codebook_weight')}" +
                        (f" + compressed complex STFT x{hparams.get('stft_weight')}"
                         if hparams.get("stft_weight") else "") +
                        (f" + linear log-magnitude STFT x{hparams.get('logmag_weight')}"
                         if hparams.get("logmag_weight") else "") +
                        (f" + waveform L1 x{hparams.get('wave_weight')}" if hparams.get("wave_weight") else "") +
                        (f" + negative SI-SDR x{hparams.get('sisdr_weight')}" if hparams.get("sisdr_weight") else "") +
                        gan,
                "decoder": (hparams.get("decoder_type") or "dac") +
                           (f" (iSTFT hop {hparams['istft_hop']}, window {hparams.get('n_fft')})"
                            if hparams.get("istft_hop") else "") +
                           (f" + coded f0 track ({hparams.get('f0_bins')} levels)" if hparams.get("f0_bins") else "") +
                           (f" + {hparams.get('f0_harmonics')} harmonic oscillators"
                            if hparams.get("f0_harmonics") else ""),
                "batches": int(sd["codec.train_batches"]) if "codec.train_batches" in sd else None,
                "excerpt": data.get("excerpt"), "sample_rate": data.get("sample_rate"),
                "loudness": data.get("loudness"), "quantizer_dropout": hparams.get("quantizer_dropout")}

    # ------------------------------------------------------------------------------------------------ network
    def pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to(x, self.hop, 1, "constant")

    def f0_indices(self, x: torch.Tensor) -> torch.Tensor:
        """The quantised f0 track (B, frames) of padded audio (B, C, T) (channels averaged): what the bitstream
        carries when ``f0_bins`` is set; 0 = unvoiced."""
        f0, voiced = yin(x.mean(1), self.sample_rate, self.hop)
        return self.f0q.encode(f0, voiced)

    def f0_track(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decoder side of the f0 track (B, F): (f0 Hz with unvoiced frames filled, voiced, oscillator phase at each
        frame start in cycles), each with one more frame (the last repeated) for the interpolation end point."""
        f0, voiced = self.f0q.decode(idx)
        f0, voiced = torch.cat([f0, f0[:, -1:]], 1), torch.cat([voiced, voiced[:, -1:]], 1)
        return f0, voiced, frame_phase(f0, self.sample_rate, self.hop)

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> dict:
        t = x.shape[-1]
        xp = self.pad(x)
        z = self.encoder(xp * self.input_gain)
        z_q, codes, commit, cbl = self.quantizer(z, n_q)
        if self.f0q is not None:
            f0, voiced, phase = self.f0_track(self.f0_indices(xp))
            x_hat = self.decoder(z_q, f0, voiced, phase[:, 0])
        else:
            x_hat = self.decoder(z_q)
        return {"x_hat": x_hat[..., :t], "codes": codes, "commitment": commit, "codebook": cbl}

    # ------------------------------------------------------------------------------------------------ training
    def training_parts(self) -> dict:
        hp = self.hparams
        return {"discriminator": Discriminator(self.channels, mpd_width=int(hp.mpd_width), mrd_width=int(hp.mrd_width)),
                "mel_loss": MelLoss(self.sample_rate),
                "stft_loss": ComplexSTFTLoss(tuple(hp.get("stft_windows") or (256, 512, 1024))),
                "logmag_loss": LogMagSTFTLoss(tuple(hp.get("logmag_windows") or (512, 1024, 2048)))}

    def configure_optimizers(self, task):
        hp = self.hparams
        betas = tuple(hp.betas or (0.8, 0.99))
        opt_g = torch.optim.AdamW(self.parameters(), lr=hp.lr, betas=betas)
        opt_d = torch.optim.AdamW(task.parts["discriminator"].parameters(), lr=hp.disc_lr or hp.lr, betas=betas)
        sch_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, hp.lr_gamma)
        sch_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, hp.lr_gamma)
        return [opt_g, opt_d], [sch_g, sch_d]

    @staticmethod
    def _adv_d(real, fake):
        loss = 0
        for fr, ff in zip(real, fake):
            loss = loss + torch.mean(ff[-1] ** 2) + torch.mean((1 - fr[-1]) ** 2)
        return loss

    @staticmethod
    def _adv_g(real, fake):
        adv, fm = 0, 0
        for fr, ff in zip(real, fake):
            adv = adv + torch.mean((1 - ff[-1]) ** 2)
            for a, b in zip(fr[:-1], ff[:-1]):
                fm = fm + F.l1_loss(b, a.detach())
        return adv, fm

    def discriminator_loss(self, disc, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """LSGAN loss of the discriminators on real ``x`` and decoded ``x_hat`` (detached)."""
        return self._adv_d(disc(x), disc(x_hat.detach()))

    def generator_loss(self, parts, x: torch.Tensor, out: dict, gan: bool) -> tuple[torch.Tensor, dict]:
        """The generator's training loss on a batch ``x`` and this module's ``forward`` output: mel, VQ and the
        optional phase losses, and with ``gan`` the adversarial and feature-matching terms. ``parts`` are the
        :meth:`training_parts`. Returns (loss, the terms to log)."""
        hp = self.hparams
        x_hat = out["x_hat"]
        mel = parts["mel_loss"](x_hat, x)
        loss = hp.mel_weight * mel + hp.commitment_weight * out["commitment"] + hp.codebook_weight * out["codebook"]
        logs = {"train/mel": mel, "train/commit": out["commitment"]}
        if hp.get("stft_weight"):
            cplx = parts["stft_loss"](x_hat, x)
            loss = loss + hp.stft_weight * cplx
            logs["train/cplx"] = cplx
        if hp.get("logmag_weight"):
            logmag = parts["logmag_loss"](x_hat, x)
            loss = loss + hp.logmag_weight * logmag
            logs["train/logmag"] = logmag
        if hp.get("wave_weight"):
            wave = F.l1_loss(x_hat, x)
            loss = loss + hp.wave_weight * wave
            logs["train/wave"] = wave
        if hp.get("sisdr_weight"):
            sdr = neg_si_sdr(x_hat, x)
            loss = loss + hp.sisdr_weight * sdr
            logs["train/neg_sisdr"] = sdr
        if gan:
            disc = parts["discriminator"]
            adv, fm = self._adv_g(disc(x), disc(x_hat))
            loss = loss + hp.adv_weight * adv + hp.fm_weight * fm
            logs.update({"train/adv": adv, "train/fm": fm})
        logs["train/loss"] = loss
        return loss, logs

    def training_step(self, task, batch, batch_idx):
        hp = self.hparams
        x = as_batch(batch)
        opt_g, opt_d = task.optimizers()
        sch_g, sch_d = task.lr_schedulers()
        out = self(x)
        gan = int(self.train_batches) >= hp.disc_start
        self.train_batches += 1
        logs = {}
        if gan:
            d_loss = self.discriminator_loss(task.parts["discriminator"], x, out["x_hat"])
            opt_d.zero_grad(set_to_none=True)
            task.manual_backward(d_loss)
            task.clip_gradients(opt_d, gradient_clip_val=10.0, gradient_clip_algorithm="norm")
            opt_d.step()
            sch_d.step()
            logs["train/d"] = d_loss
        loss, g_logs = self.generator_loss(task.parts, x, out, gan)
        logs.update(g_logs)
        opt_g.zero_grad(set_to_none=True)
        task.manual_backward(loss)
        task.clip_gradients(opt_g, gradient_clip_val=hp.grad_clip, gradient_clip_algorithm="norm")
        opt_g.step()
        sch_g.step()
        logs["train/codes0"] = float(out["codes"][:, 0].unique().numel())
        task.log_dict(logs, prog_bar=True, on_step=True, on_epoch=False)

    def validation_step(self, task, batch, batch_idx):
        x = as_batch(batch)
        out = self(x)
        mel = task.parts["mel_loss"](out["x_hat"], x)
        from codec.eval.metrics import si_sdr

        sdr = float(np.mean([si_sdr(a.T.cpu().numpy(), b.T.cpu().numpy()) for a, b in zip(x, out["x_hat"])]))
        task.log_dict({"val/mel": mel, "val/si_sdr": sdr}, on_epoch=True, sync_dist=True, batch_size=x.size(0))

    # ------------------------------------------------------------------------------------------------ prior
    @torch.no_grad()
    def fit_prior(self, signals, progress: bool = False) -> dict:
        """Fit the token prior on training audio: ``signals`` is an iterable of (C, T) tensors at the model's rate.
        Sets ``prior_map`` (context clusters of the codebooks) and ``prior_counts``; returns a summary."""
        was = self.training
        self.eval()
        cmap = self.prior.context_map([q.codebook.weight.detach().cpu().numpy() for q in self.quantizer.quantizers])
        self.prior_map.copy_(torch.from_numpy(cmap))
        counts = np.zeros(self.prior.count_shape, dtype=np.float64)
        f0_counts = np.zeros(self.f0_prior.count_shape, dtype=np.float64) if self.f0_bins else None
        frames = 0
        for s in signals:
            codes = self.tokens(s[None].float())
            if self.f0_bins:
                f0_counts += self.f0_prior.count(codes[-1:], self.f0_cmap)
                codes = codes[:-1]
            counts += self.prior.count(codes, cmap)
            frames += codes.shape[-1]
        self.prior_counts.copy_(torch.from_numpy(counts))
        if self.f0_bins:
            self.f0_counts.copy_(torch.from_numpy(f0_counts))
        self.train(was)
        self._tables, self._fingerprint = None, None
        return {"frames": int(frames), "seconds": round(frames / self.frame_rate, 1)}

    @staticmethod
    def _check_augment(aug) -> dict | None:
        """``prior_augment``: {"speeds": [...], "shifts": [...], "gains": [...], "only": [file specs]} or None."""
        if not aug:
            return None
        if not isinstance(aug, dict) or not set(aug) <= {"speeds", "shifts", "gains", "only"}:
            raise CodecError(f"prior_augment must be a dict with keys speeds / shifts / gains / only, not {aug!r}")
        out = {"speeds": [float(v) for v in aug.get("speeds", [1.0])],
               "shifts": [int(v) for v in aug.get("shifts", [0])],
               "gains": [float(v) for v in aug.get("gains", [1.0])]}
        if not all(0.5 <= v <= 2 for v in out["speeds"]) or not all(v >= 0 for v in out["shifts"]) or \
                not all(v > 0 for v in out["gains"]):
            raise CodecError(f"prior_augment out of range: {aug!r}")
        if aug.get("only"):
            out["only"] = [str(v) for v in aug["only"]]
        return out

    def prior_signals(self, files, loudness=-24.0):
        """The signals the token prior is counted on: each training file at the model's rate (loudness-normalised
        like training), and for the files ``prior_augment`` names, also its variants: speed perturbation (resampled
        by the factor, which shifts pitch and tempo), a shift of the frame grid by ``shifts`` samples, and gains."""
        import torchaudio.functional as AF

        from codec.train.data import list_audio, load_audio_as

        aug = self.prior_augment
        chosen = {str(p) for p in list_audio(aug["only"])} if aug and aug.get("only") else None
        for f in files:
            x = load_audio_as(f, self.sample_rate, self.channels, loudness).float()
            if not aug or (chosen is not None and str(f) not in chosen):
                yield x
                continue
            for sp in aug["speeds"]:
                y = x if sp == 1.0 else AF.resample(x, int(round(self.sample_rate * sp)), self.sample_rate)
                for sh in aug["shifts"]:
                    for g in aug["gains"]:
                        if y.shape[-1] - sh >= self.hop:
                            yield (y[:, sh:] * g).clamp(-1, 1)

    def prepare_export(self, source: dict) -> dict:
        """``codec export``: fit the token prior on the training audio the source records (a training checkpoint's
        data module, or a shipped checkpoint's record when new prior settings are given); a shipped checkpoint
        re-exported as it is keeps its frozen tables (its counts are not shipped)."""
        if float(self.prior_counts.sum()) > 0 and not source.get("options"):
            return {}
        if source.get("tables") is not None and not source.get("options"):
            self.set_tables(source["tables"])
            return {}
        dm = dict(source.get("data") or {})
        record = source.get("training") or {}
        if not dm.get("train"):
            if not record.get("data"):
                raise CheckpointError("the checkpoint records no training audio to refit the token prior on")
            dm = {"train": record["data"], "loudness": record.get("loudness", -24.0)}
        return self.fit_prior_on(dm)

    def fit_prior_on(self, datamodule_hparams: dict) -> dict:
        """Fit the token prior on the training audio a data module's settings name; returns the record entry."""
        from codec.train.data import list_audio

        train = datamodule_hparams.get("train")
        if not train:
            raise CheckpointError("cannot fit the token prior: the training checkpoint does not record its "
                                  "training audio (datamodule hyper-parameters 'train')")
        files = list_audio(train)
        loud = datamodule_hparams.get("loudness", -24.0)
        info = self.fit_prior(self.prior_signals(files, loud))
        ctx = ("the previous frame's code" if self.prior.mode == "prev" else
               "the coarser codebook's code in the same frame (codebook 0: the previous frame's code)")
        aug = self.prior_augment
        aug_txt = ""
        if aug:
            n = len(aug["speeds"]) * len(aug["shifts"]) * len(aug["gains"])
            aug_txt = (f"; {'the files ' + ', '.join(aug['only']) if aug.get('only') else 'every file'} also in "
                       f"{n} variants (speeds {aug['speeds']}, frame-grid shifts {aug['shifts']} samples, gains "
                       f"{aug['gains']})")
        return {"prior": f"TokenPrior: code | cluster of {ctx} ({self.prior.contexts} clusters "
                         f"by k-means of the codebook vectors), Dirichlet-smoothed (alpha {self.prior.alpha}), "
                         f"{self.prior.uniform:g} of the mass uniform; counted on {info['seconds']} s of training "
                         f"audio ({len(files)} files{aug_txt})" +
                         (f"; f0 track: TokenPrior of the level given the previous frame's ({self.f0_prior.contexts} "
                          f"contexts: unvoiced or the voiced level in pairs), {self.f0_prior.uniform:g} of the mass "
                          f"uniform, counted on the same audio" if self.f0_bins else "")}

    def _compute_tables(self) -> dict[str, CdfTables]:
        if float(self.prior_counts.sum()) <= 0:
            raise CheckpointError("the token prior has no counts: call fit_prior on training audio (codec export "
                                  "does this from a training checkpoint) before freezing its tables")
        tables = {"tokens": self.prior.tables(self.prior_counts.cpu().numpy())}
        if self.f0_bins:
            tables["f0"] = self.f0_prior.tables(self.f0_counts.cpu().numpy())
        return tables

    # ------------------------------------------------------------------------------------------------ coding
    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.size(0) != 1 or x.size(1) != self.channels:
            raise CodecError(f"{type(self).__name__} codes one signal of shape (1, {self.channels}, T), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.shape[-1] < 1:
            raise CodecError("empty audio")

    def _n_q(self, n_q) -> int:
        n_q = self.n_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_codebooks:
            raise CodecError(f"{self.model_name_or_class()} has {self.n_codebooks} codebooks; n_q={n_q} asked")
        return n_q

    @torch.no_grad()
    def tokens(self, x: torch.Tensor, n_q: int | None = None) -> np.ndarray:
        """Codes (n_q, frames) int32 of one signal (1, C, T) in [-1, 1], computed in chunks of ``chunk`` frames
        with ``margin`` frames of context on each side (bounded memory; equal to whole-signal encoding when the
        margin covers the encoder's receptive field). A model with the f0 track (``f0_bins``) appends it as one
        more row: (n_q + 1, frames)."""
        n_q = self._n_q(n_q)
        x = self.pad(x)
        n = x.shape[-1] // self.hop
        m, out = self.margin, []
        for s in range(0, n, self.chunk):
            e = min(n, s + self.chunk)
            a, b = max(0, s - m), min(n, e + m)
            xc = x[..., a * self.hop:b * self.hop]
            _, codes, _, _ = self.quantizer(self.encoder(xc * self.input_gain), n_q)
            if self.f0_bins:
                codes = torch.cat([codes, self.f0_indices(xc)[:, None]], 1)
            out.append(codes[0, :, s - a:e - a])
        return torch.cat(out, -1).to(torch.int32).cpu().numpy()

    @torch.no_grad()
    def from_tokens(self, codes: np.ndarray, length: int | None = None) -> torch.Tensor:
        """(1, C, T) audio from codes (n_q, frames), decoded in chunks like :meth:`tokens`."""
        c = torch.from_numpy(np.asarray(codes, dtype=np.int64))[None].to(self.device)
        if self.f0_bins:
            # the f0 track of the whole signal first: each chunk's oscillators start from its phase
            f0, voiced, phase = self.f0_track(c[:, -1])
            c = c[:, :-1]
        n = c.shape[-1]
        m, out = self.margin, []
        for s in range(0, n, self.chunk):
            e = min(n, s + self.chunk)
            a, b = max(0, s - m), min(n, e + m)
            zq = self.quantizer.from_codes(c[..., a:b])
            if self.f0_bins:
                y = self.decoder(zq, f0[:, a:b + 1], voiced[:, a:b + 1], phase[:, a])
            else:
                y = self.decoder(zq)
            out.append(y[..., (s - a) * self.hop:(e - a) * self.hop])
        y = torch.cat(out, -1)
        return y[..., :length] if length is not None else y

    def _compress(self, x: torch.Tensor, n_q: int | None = None, kbps: float | None = None):
        """Code one signal (1, C, T) in [-1, 1] with the first ``n_q`` codebooks (or as many as ``kbps`` allows):
        real bytes from :mod:`codec.entropy`."""
        self._check_input(x)
        if kbps is not None:
            if n_q is not None:
                raise CodecError("give n_q or kbps, not both")
            n_q = self.codebooks_for_kbps(kbps)
        codes = self.tokens(x, n_q)
        tok = codes[:-1] if self.f0_bins else codes
        streams = {"tokens": self.prior.encode(tok, self.prior_map.cpu().numpy(), self.tables["tokens"])}
        if self.f0_bins:
            streams["f0"] = self.f0_prior.encode(codes[-1:], self.f0_cmap, self.tables["f0"])
        return Payload(streams=streams, ints={"size": (int(x.shape[-1]),), "n_q": (tok.shape[0],)}), [codes]

    def _payload_shape(self, payload: Payload) -> tuple[int, int, int]:
        """(samples at the model's rate, codebooks, frames) of a payload, checked against the model."""
        size = tuple(int(s) for s in payload.ints.get("size", ()))
        nq = tuple(int(s) for s in payload.ints.get("n_q", ()))
        if len(size) != 1 or not 1 <= size[0] <= (1 << 40):
            raise BitstreamError(f"RVQGAN payload has no valid length (got {size})")
        if len(nq) != 1 or not 1 <= nq[0] <= self.n_codebooks:
            raise BitstreamError(f"RVQGAN payload asks for {nq} codebooks; this model has {self.n_codebooks}")
        if "tokens" not in payload.streams:
            raise BitstreamError("payload has no 'tokens' stream")
        if self.f0_bins and "f0" not in payload.streams:
            raise BitstreamError("payload has no 'f0' stream (this model decodes with the coded f0 track)")
        return size[0], nq[0], -(-size[0] // self.hop)

    def expected_symbols(self, payload: Payload) -> dict[str, int]:
        _, nq, frames = self._payload_shape(payload)
        return {"tokens": nq * frames, **({"f0": frames} if self.f0_bins else {})}

    def _decompress(self, payload: Payload):
        size, nq, frames = self._payload_shape(payload)
        codes = self.prior.decode(payload.streams["tokens"], (nq, frames), self.prior_map.cpu().numpy(),
                                  self.tables["tokens"])
        if self.f0_bins:
            f0 = self.f0_prior.decode(payload.streams["f0"], (1, frames), self.f0_cmap, self.tables["f0"])
            codes = np.concatenate([codes, f0], 0)
        return self.from_tokens(codes, size), [codes]
