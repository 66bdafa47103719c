"""Training of the video codec's temporal prior (a mixin of :class:`codec.codecs.video.models.LatentVideoCodec`):
the rate of P-frame latents under the prior, the image codec frozen."""

from __future__ import annotations

import torch

from codec.codecs.base import CodecModule, as_batch
from codec.errors import CodecError


class VideoTraining:
    """Loss, optimiser and training record of the temporal prior."""

    @classmethod
    def training_record(cls, hparams: dict, data: dict, checkpoint: dict) -> dict:
        return {**CodecModule.training_record.__func__(cls, hparams, data, checkpoint),
                "loss": "rate of the P-frame latents under the temporal prior (image codec frozen)",
                "stage": "temporal prior on frozen image-codec latents (no joint fine-tune)",
                "data": data.get("train"), "validation": data.get("val") or
                f"last {data.get('val_fraction')} of each training clip's frames",
                "frames_per_group": data.get("frames"), "crop": data.get("crop_size"),
                "max_frames_per_clip": data.get("max_frames")}

    def training_extra(self) -> dict:
        return {"image_sha256": self.image_sha256, "image_model": self.image_name}

    def configure_optimizers(self, task):
        opt = torch.optim.Adam(self.temporal.parameters(), lr=self.hparams.lr)
        if self.hparams.lr_milestones:
            sch = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_milestones),
                                                       gamma=self.hparams.lr_gamma)
            return [opt], [{"scheduler": sch, "interval": "step"}]
        return opt

    def _bits(self, residual: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """Bits of the rounded residual (straight-through rounding: the inference quantiser) under N(0, scales)."""
        gc = self.image.gaussian_conditional
        v = residual + (torch.round(residual) - residual).detach()
        lik = gc.likelihood_lower_bound(gc._likelihood(v, scales))
        return -torch.log2(lik).sum()

    def group_rates(self, x: torch.Tensor) -> dict:
        """Rates (bits per pixel) of a batch of frame groups (B, T, 3, H, W): frame 0 intra, frames 1.. P-coded
        with the temporal prior, and the same frames 1.. coded intra (the saving's reference)."""
        if x.dim() != 5 or x.size(1) < 2:
            raise CodecError(f"expected frame groups (B, T>=2, 3, H, W), got {tuple(x.shape)}")
        img = self.image
        b, t = x.shape[:2]
        eb = img.entropy_bottleneck
        with torch.no_grad():
            y = img.g_a(x.flatten(0, 1))
            z = img.hyper_encode(y)
            z_hat = eb.quantize(z, "dequantize", eb._get_medians().detach())
            z_bits = -torch.log2(eb.likelihood(z_hat)).unflatten(0, (b, t))[:, 1:].sum()
            scales_h, means_h = self._hyper(z_hat)
            y, scales_h, means_h = (a.unflatten(0, (b, t)) for a in (y, scales_h, means_h))
            y_prev = torch.round(y[:, 0] - means_h[:, 0]) + means_h[:, 0]
            intra_bits = sum(self._bits(y[:, i] - means_h[:, i], scales_h[:, i]) for i in range(1, t))
        p_bits = 0.0
        for i in range(1, t):
            scales, means = self.temporal(y_prev, means_h[:, i], scales_h[:, i])
            p_bits = p_bits + self._bits(y[:, i] - means, scales)
            y_prev = (torch.round(y[:, i] - means) + means).detach()
        pixels = b * (t - 1) * x.size(-1) * x.size(-2)
        return {"bpp_p": p_bits / pixels, "bpp_intra": intra_bits / pixels, "bpp_z": z_bits / pixels}

    def training_step(self, task, batch, batch_idx):
        x = as_batch(batch)
        r = self.group_rates(x)
        opt = task.optimizers()
        opt.zero_grad()
        task.manual_backward(r["bpp_p"])
        if self.hparams.clip_max_norm and self.hparams.clip_max_norm > 0:
            task.clip_gradients(opt, gradient_clip_val=self.hparams.clip_max_norm, gradient_clip_algorithm="norm")
        opt.step()
        sch = task.lr_schedulers()
        if sch is not None:
            sch.step()
        saving = 1 - (r["bpp_p"] + r["bpp_z"]) / (r["bpp_intra"] + r["bpp_z"])
        task.log_dict({"train/bpp_p": r["bpp_p"], "train/bpp_intra": r["bpp_intra"], "train/saving": saving},
                      prog_bar=True, on_step=True, on_epoch=False)
        return r["bpp_p"]

    def validation_step(self, task, batch, batch_idx):
        x = as_batch(batch)
        with torch.no_grad():
            r = self.group_rates(x)
        total_p, total_i = r["bpp_p"] + r["bpp_z"], r["bpp_intra"] + r["bpp_z"]
        task.log_dict({"val/loss": r["bpp_p"], "val/bpp_p": total_p, "val/bpp_intra": total_i,
                       "val/saving": 1 - total_p / total_i}, on_epoch=True, sync_dist=True, batch_size=x.size(0))
