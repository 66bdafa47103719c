"""A small hyperprior image codec on the codec framework: the complete example of docs/custom_codec.md."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.bitstream import Payload
from codec.codecs.base import CodecModule, as_batch, register_codec
from codec.entropy import decode, encode
from codec.entropy.adapters import entropy_bottleneck_dequantize as dequantize, entropy_bottleneck_indexes as indexes
from codec.entropy.adapters import entropy_bottleneck_symbols as symbols
from codec.entropy.models import EntropyBottleneck
from codec.errors import BitstreamError


def convs(sizes, up=False):  # stride-2 5x5 (transposed) convolutions, ReLU between them
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.ConvTranspose2d(a, b, 5, 2, 2, 1) if up else nn.Conv2d(a, b, 5, 2, 2), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@register_codec
class TinyHyperprior(CodecModule):
    """y - mu(z) coded with a factorized prior; z, the side information that predicts the mean mu, too."""

    codec_name = "tiny-hyperprior"  # modality "image" is the base's default
    stride = 16

    def __init__(self, width: int = 32, lmbda: float = 0.01, lr: float = 1e-3, init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.width = c = int(width)
        self.g_a, self.g_s = convs([3, c, c, c]), convs([c, c, c, 3], up=True)
        self.h_a, self.h_s = convs([c, c]), convs([c, c], up=True)
        self.y_prior, self.z_prior = EntropyBottleneck(c), EntropyBottleneck(c)
        if init_from:
            self.init_from(init_from)

    def config(self):
        return {"class": type(self).__name__, "width": self.width}

    def forward(self, x):
        y = self.g_a(x)
        z_hat, z_lik = self.z_prior(self.h_a(y))
        mu = self.h_s(z_hat)
        r_hat, y_lik = self.y_prior(y - mu)
        return {"x_hat": self.g_s(r_hat + mu), "likelihoods": {"y": y_lik, "z": z_lik}}

    def _compute_tables(self):
        return {"y": self.y_prior.tables(), "z": self.z_prior.tables()}

    # coding: the symbols' tables do not depend on mu (a float prediction), so files decode on any machine
    def _hat(self, prior, sym):
        return dequantize(prior, sym).float().to(self.device)

    def _compress(self, x):
        y = self.g_a(self.pad(x))
        z_sym, z_idx = symbols(self.z_prior, self.h_a(y))
        y_sym, y_idx = symbols(self.y_prior, y - self.h_s(self._hat(self.z_prior, z_sym)))
        streams = {"z": encode(z_sym, z_idx, self.tables["z"]), "y": encode(y_sym, y_idx, self.tables["y"])}
        return Payload(streams=streams, ints={"size": tuple(x.shape[-2:])}), [z_sym, y_sym]

    def _decompress(self, payload):
        h, w = payload.ints.get("size", (0, 0))
        if not (0 < h <= 1 << 16 and 0 < w <= 1 << 16) or {"z", "y"} - set(payload.streams):
            raise BitstreamError("tiny-hyperprior payload lacks its size or streams")
        out = []
        for key, prior, s in (("z", self.z_prior, 16), ("y", self.y_prior, 8)):
            shape = (1, self.width, -(-h // 16) * 16 // s, -(-w // 16) * 16 // s)
            out.append(decode(payload.streams[key], indexes(prior, shape), self.tables[key], shape=shape))
        y_hat = self._hat(self.y_prior, out[1]) + self.h_s(self._hat(self.z_prior, out[0]))
        return self.g_s(y_hat).clamp(0, 1)[..., :h, :w], out

    def configure_optimizers(self, task):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def training_step(self, task, batch, batch_idx):
        x = as_batch(batch)
        out = self(x)
        bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / (x.size(0) * x.size(2) * x.size(3))
        mse = F.mse_loss(out["x_hat"], x)
        aux = self.y_prior.loss() + self.z_prior.loss()  # the bottlenecks' quantiles (CompressAI's auxiliary loss)
        task.log_dict({"train/bpp": bpp, "train/mse": mse}, prog_bar=True)
        return self.hparams.lmbda * 255 ** 2 * mse + bpp + aux
