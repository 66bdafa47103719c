"""Learned codecs in the RD harness, through the same one data path as ``codec encode`` / ``codec decode``
(:mod:`codec.api`): the bytes measured are the container file's bytes, header included.

A shipped model family from ``checkpoints/manifest.json`` (e.g. ``msh``) is one RD codec whose operating points are
its qualities; a single shipped model name (e.g. ``msh-q3``) or a ``.pt`` file is a codec with one point.
"""

from __future__ import annotations

from codec.eval.baselines import RDCodec


class LearnedImage(RDCodec):
    modality = "image"
    learned = True
    point_name = "quality"
    #: a checkpoint file, not a shipped model: decoding uses it (a file's header names its stem, not a path)
    from_file = False

    def _decoder(self):
        return self.model(self.ladder()[0]) if self.from_file else None

    def __init__(self, key: str, entries: list[dict]):
        self.key = key
        self.entries = {e.get("quality") or 0: e for e in entries}
        e0 = entries[0]
        cfg = e0.get("config", {})
        if "N" in cfg:
            self.name = f"ours {e0.get('codec', key)} (N={cfg.get('N')}, M={cfg.get('M')})"
        else:
            self.name = f"ours WaLLoC {key} (J={cfg.get('J')}, {cfg.get('latent_dim')} latents)"

    def ladder(self):
        return sorted(self.entries)

    def identity(self) -> str:
        from codec import __version__
        from codec.bitstream import FORMAT_VERSION

        return f"{self.key}|codec-{__version__}|format-{FORMAT_VERSION}|" + ",".join(
            f"{q}:{e.get('sha256', '')[:16]}" for q, e in sorted(self.entries.items()))

    def model(self, point):
        from codec.checkpoints import load_model

        e = self.entries.get(int(point))
        if e is None:
            from codec.errors import CodecError

            raise CodecError(f"{self.key} has qualities {self.ladder()}, not {point}")
        return load_model(e["name"], None, self.modality)

    def encode(self, item, point) -> bytes:
        from codec.api import encode_image

        return encode_image(item, self.model(point))

    def decode(self, data: bytes, item):
        from codec.api import decode

        return decode(data, self._decoder())


class LearnedVariableRate(LearnedImage):
    """One variable-rate image model (e.g. the hierarchical VAE) whose operating points are its qualities (the
    lambdas it was trained over). ``blocks``: decode only the first k latent blocks (progressive decoding)."""

    def __init__(self, key: str, entry: dict, blocks: int | None = None):
        self.key, self.entry, self.blocks = key, entry, blocks
        n = int(entry.get("config", {}).get("qualities", 1))
        self.entries = {q: entry for q in range(1, n + 1)}
        self.name = f"ours {entry.get('codec', key)} (one model, {n} lambdas)" + (
            f", first {blocks} latent blocks" if blocks is not None else "")
        if blocks is not None:
            self.key = f"{key}@{blocks}"

    def identity(self) -> str:
        return super().identity() + f"|blocks={self.blocks}"

    def model(self, point=None):
        from codec.checkpoints import load_model

        return load_model(self.entry["name"], None, self.modality)

    def encode(self, item, point) -> bytes:
        from codec.api import encode_image

        return encode_image(item, self.model(), quality=int(point))

    def decode(self, data: bytes, item):
        from codec.api import decode

        return decode(data, self._decoder(), blocks=self.blocks)


class LearnedAudio(LearnedImage):
    """A shipped audio model as an RD codec with one operating point."""

    modality = "audio"

    def encode(self, item, point) -> bytes:
        from codec.api import encode_audio

        samples, sr = item
        return encode_audio(samples, sr, self.model(point))

    def decode(self, data: bytes, item):
        from codec.api import decode

        return decode(data, self._decoder())[0]


class LearnedRVQ(LearnedAudio):
    """A shipped RVQGAN model as an RD codec whose operating points are nominal bitrates (kbps), i.e. numbers of
    codebooks: by default a quarter, half and all of them."""

    point_name = "kbps"

    def __init__(self, key: str, entry: dict):
        self.key, self.entry = key, entry
        cfg = entry.get("config", {})
        self.name = (f"ours RVQGAN {key} ({cfg.get('channels')} ch, {cfg.get('sample_rate') // 1000} kHz)"
                     if cfg.get("sample_rate") else f"ours RVQGAN {key}")
        self.entries = {1: entry}
        n = int(cfg.get("n_codebooks", 1))
        hop = 1
        for r in cfg.get("encoder_rates", [1]):
            hop *= int(r)
        import math

        per = math.log2(int(cfg.get("codebook_size", 1024))) * int(cfg.get("sample_rate", 16000)) / hop / 1000
        self._ladder = sorted({round(per * k, 4) for k in (max(1, n // 4), max(1, n // 2), n)})

    def ladder(self):
        return self._ladder

    def model(self, point=None):
        from codec.checkpoints import load_model

        return load_model(self.entry["name"], None, self.modality)

    def encode(self, item, point) -> bytes:
        from codec.api import encode_audio

        samples, sr = item
        return encode_audio(samples, sr, self.model(), kbps=float(point) + 1e-6)


class LearnedVideo(LearnedImage):
    """A shipped video family as an RD codec over its qualities, through :func:`codec.api.encode_video` /
    :func:`codec.api.decode`. ``intra_period``: the model's default (one intra frame per 32) or 1 = every frame intra
    (the all-intra reference: the image codec alone, through the same colour conversion and container)."""

    modality = "video"

    def __init__(self, key: str, entries: list[dict], intra_period: int | None = None):
        super().__init__(key, entries)
        self.intra_period = intra_period
        img = entries[0].get("config", {}).get("image_model", "").rsplit("-", 1)[0]
        base = f"{key}-intra" if intra_period == 1 else key
        self.key = base
        self.name = (f"ours all-intra ({img} image codec)" if intra_period == 1 else
                     f"ours latent video ({img} + block-adaptive temporal prior, intra period "
                     f"{intra_period or entries[0].get('config', {}).get('intra_period', 32)})")

    def identity(self) -> str:
        from codec.codecs.video.models import PFORMAT

        return super().identity() + f"|ip={self.intra_period}|pformat={PFORMAT}"

    def encode(self, item, point) -> bytes:
        from codec.api import encode_video

        return encode_video(item, self.model(point), intra_period=self.intra_period)

    def decode(self, data: bytes, item):
        from codec.api import decode

        return decode(data, self._decoder())


def learned_codec(key: str) -> RDCodec | None:
    """The shipped family or model called ``key``, or None. A video family ``F`` also answers to ``F-intra``
    (every frame intra)."""
    from codec.checkpoints import all_models
    from codec.errors import CheckpointError

    if key.endswith(".pt"):
        return _file_codec(key)
    blocks = None
    if "@" in key:  # KEY@K: a variable-rate hierarchical model decoded from its first K latent blocks
        key, _, k = key.partition("@")
        blocks = int(k)
    try:
        models = all_models().get("models", [])
    except CheckpointError:
        return None
    for suffix, ip in (("-intra", 1), ("", None)):
        if suffix and not key.endswith(suffix):
            continue
        fam = [m for m in models if m.get("family") == key[: len(key) - len(suffix)] and m.get("modality") == "video"]
        if fam:
            return LearnedVideo(key[: len(key) - len(suffix)], fam, ip)
    fam = [m for m in models if m.get("family") == key and m.get("modality") == "image"]
    if fam:
        return LearnedImage(key, fam)
    one = [m for m in models if m.get("name") == key]
    if one and (one[0].get("config") or {}).get("qualities") and one[0].get("modality") == "image":
        return LearnedVariableRate(key, one[0], blocks)
    if one and one[0].get("codec") == "RVQGAN":
        return LearnedRVQ(key, one[0])
    if one:
        cls = LearnedAudio if one[0].get("modality") == "audio" else LearnedImage
        return cls(key, [dict(one[0], quality=one[0].get("quality") or 1)])
    return None


def _file_codec(path: str) -> RDCodec:
    """An exported checkpoint file (``codec export -o FILE.pt``, e.g. a custom codec) as a one-point RD codec."""
    from pathlib import Path

    from codec.checkpoints import load_model, sha256_file
    from codec.errors import CheckpointError

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint file not found: {p}")
    m = load_model(str(p))
    entry = {"name": str(p), "quality": 1, "codec": type(m).__name__, "config": m.config(),
             "modality": m.modality, "sha256": sha256_file(p)}
    if entry["codec"] == "RVQGAN":
        c = LearnedRVQ(p.stem, entry)
    elif m.modality == "image" and entry["config"].get("qualities"):
        c = LearnedVariableRate(p.stem, entry)
    else:
        c = {"image": LearnedImage, "audio": LearnedAudio, "video": LearnedVideo}[m.modality](p.stem, [entry])
        if m.modality != "video":
            c.name = f"{type(m).__name__} ({p.name})"
    c.from_file = True
    return c


def learned_keys(modality: str | None = None) -> list[str]:
    from codec.checkpoints import load_manifest
    from codec.errors import CheckpointError

    try:
        models = load_manifest().get("models", [])
    except CheckpointError:
        return []
    return sorted({m["family"] for m in models if m.get("family") and (modality is None or m.get("modality") == modality)})
