"""The checkpoint registry: ``checkpoints/manifest.json`` lists every shipped model (name, codec class, config,
file, sha256, parameter count, training data and duration, measured RD points).

Shipped checkpoint files (``checkpoints/<name>.pt``) are plain ``torch.save`` dicts of tensors and primitive types,
loaded with ``torch.load(weights_only=True)`` (nothing is unpickled):

    {"format": 1, "codec": "MeanScaleHyperprior", "modality": "image", "config": {...},
     "state_dict": {...},          # parameters stored as float16; buffers (bounds, scale table, CDFs) as they are
     "tables": {"bottleneck": CdfTables.state_dict(), "gaussian": ...},   # integer CDF tables, frozen at export
     "training": {...}}            # what it was trained on and for how long

The tables were built at export from the float16-rounded weights, and decoders use them as stored (never recomputed
from floats). The sha256 of each file is in the manifest and checked on load.

Names: a model has a ``name`` (``msh-q3``) and may belong to a ``family`` (``msh``) at a ``quality`` (1 = lowest
rate). ``--model msh --quality 5``, ``--model msh-q5`` and ``--model checkpoints/msh-q5.pt`` all work; with no model
the manifest's default for the modality is used at its default quality.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from codec.config import repo_root
from codec.errors import CheckpointError

FORMAT = 1


def checkpoints_dir() -> Path:
    """``CODEC_CHECKPOINTS`` if set; else the checkout's ``checkpoints/``; else the copy installed with the wheel."""
    env = os.environ.get("CODEC_CHECKPOINTS")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent / "checkpoints"
    if (here / "manifest.json").exists():
        return here
    try:
        from importlib.resources import files

        p = Path(str(files("codec.weights")))
        if (p / "manifest.json").exists():
            return p
    except (ModuleNotFoundError, TypeError):
        pass
    return repo_root() / "checkpoints"


def load_manifest(folder: Path | None = None) -> dict:
    p = (folder or checkpoints_dir()) / "manifest.json"
    if not p.exists():
        raise CheckpointError(f"no checkpoint manifest at {p}")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(m, dict) or not isinstance(m.get("models", []), list):
        raise CheckpointError(f"{p} must be an object with a 'models' list")
    return m


def write_manifest(manifest: dict, folder: Path | None = None) -> None:
    p = (folder or checkpoints_dir()) / "manifest.json"
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, p)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# finding a model
# --------------------------------------------------------------------------------------------------------------
def family_members(manifest: dict, family: str) -> list[dict]:
    return sorted((m for m in manifest.get("models", []) if m.get("family") == family),
                  key=lambda m: m.get("quality", 0))


def resolve_entry(model: str | None = None, quality: int | None = None, modality: str = "image",
                  manifest: dict | None = None) -> dict:
    """The manifest entry for a model name or family (+ quality); no model = the default for ``modality``."""
    manifest = manifest if manifest is not None else load_manifest()
    models = manifest.get("models", [])
    if model is None:
        d = manifest.get("defaults", {}).get(modality)
        if not d:
            raise CheckpointError(f"no default {modality} model is shipped (checkpoints/manifest.json); "
                                  "name one with --model or a checkpoint file")
        model = d["family"] if isinstance(d, dict) else d
        if quality is None and isinstance(d, dict):
            quality = d.get("quality")
    by_name = {m["name"]: m for m in models}
    if model in by_name:
        e = by_name[model]
        if quality is not None and e.get("quality") != quality:
            raise CheckpointError(f"model {model!r} has quality {e.get('quality')}; to pick a quality name the "
                                  f"family ({e.get('family')!r}) with --quality")
        return e
    fam = family_members(manifest, model)
    if fam:
        if quality is None:
            return fam[(len(fam) - 1) // 2]
        for e in fam:
            if e.get("quality") == quality:
                return e
        raise CheckpointError(f"family {model!r} has qualities {[e.get('quality') for e in fam]}, not {quality}")
    known = sorted(set(by_name) | {m.get("family") for m in models if m.get("family")})
    raise CheckpointError(f"unknown model {model!r}; shipped: {', '.join(known) or 'none'} (see `codec models`)")


# --------------------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------------------
def _torch_load(path: Path) -> dict:
    import pickle

    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path} is not a loadable checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path} is not a codec checkpoint (not a dict)")
    return ck


def _build(codec_class: str, config: dict):
    from codec.codecs.image.models import IMAGE_CODECS, build_image_codec
    from codec.codecs.wavelet.models import WAVELET_CODECS, build_wavelet_codec
    from codec.codecs.audio.models import AUDIO_CODECS, build_audio_codec
    from codec.codecs.video.models import VIDEO_CODECS, build_video_codec

    if codec_class in VIDEO_CODECS:
        return build_video_codec(config)
    if codec_class in IMAGE_CODECS:
        return build_image_codec(config)
    if codec_class in WAVELET_CODECS:
        return build_wavelet_codec(config)
    if codec_class in AUDIO_CODECS:
        return build_audio_codec(config)
    raise CheckpointError(f"unknown codec class {codec_class!r} in checkpoint")


def modality_of(model) -> str:
    """"image", "audio" or "video": what a loaded codec codes."""
    return getattr(model, "modality", "image")


def load_checkpoint_file(path, expected_sha256: str | None = None, name: str = ""):
    """Load a shipped (exported) checkpoint file into a ready-to-code model (eval mode, tables frozen)."""
    import torch

    from codec.entropy import CdfTables

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint file not found: {p}")
    if expected_sha256 and sha256_file(p) != expected_sha256:
        raise CheckpointError(f"{p} does not match the sha256 in the manifest (corrupt or replaced file)")
    ck = _torch_load(p)
    if "state_dict" in ck and "pytorch-lightning_version" in ck:
        raise CheckpointError(f"{p} is a Lightning training checkpoint; turn it into a shipped one with "
                              f"`codec export {p} --name NAME`")
    if ck.get("format") != FORMAT or not {"codec", "config", "state_dict", "tables"} <= set(ck):
        raise CheckpointError(f"{p} is not a codec checkpoint (format {FORMAT} with codec/config/state_dict/tables)")
    model = _build(ck["codec"], ck["config"])
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in ck["state_dict"].items()}
    try:
        model.load_weights(sd)
    except (RuntimeError, CheckpointError) as e:
        raise CheckpointError(f"{p}: weights do not fit {ck['codec']} {ck['config']}: {str(e)[:300]}") from None
    try:
        model.set_tables({k: CdfTables.from_state_dict(v) for k, v in ck["tables"].items()})
    except Exception as e:  # noqa: BLE001 - any table problem is a corrupt checkpoint
        raise CheckpointError(f"{p}: bad CDF tables ({e})") from None
    model.model_name = name or ck.get("name", p.stem)
    model.training_info = ck.get("training", {})
    model.eval()
    return model


_CACHE: dict = {}


def load_model(model: str | None = None, quality: int | None = None, modality: str = "image"):
    """A shipped model by name / family (+ quality), or a checkpoint file path. Cached per process."""
    if model is not None and (model.endswith(".pt") or os.sep in model or "/" in model):
        p = Path(model)
        key = ("file", str(p.resolve()), p.stat().st_mtime if p.exists() else 0)
        if key not in _CACHE:
            _CACHE[key] = load_checkpoint_file(p, name=p.stem)
        return _CACHE[key]
    folder = checkpoints_dir()
    e = resolve_entry(model, quality, modality)
    key = ("entry", str(folder), e["name"], e.get("sha256"))
    if key not in _CACHE:
        _CACHE[key] = load_checkpoint_file(folder / e["file"], e.get("sha256"), name=e["name"])
    return _CACHE[key]


# --------------------------------------------------------------------------------------------------------------
# export: training checkpoint -> shipped checkpoint
# --------------------------------------------------------------------------------------------------------------
def _infer_image_class(sd: dict) -> str:
    if "h_s.0.weight" not in sd:
        return "FactorizedPrior"
    last = max((k for k in sd if k.startswith("h_s.") and k.endswith(".weight")), key=lambda k: int(k.split(".")[1]))
    out_ch = sd[last].shape[0]
    m = sd["g_a.6.weight"].shape[0]
    return "MeanScaleHyperprior" if out_ch == 2 * m else "ScaleHyperprior"


#: buffers that shipped checkpoints leave out: CompressAI's cached CDFs and WaLLoC's symbol counts (the frozen
#: CdfTables replace both); models' ``load_weights`` accept their absence
NOT_SHIPPED = ("_quantized_cdf", "_offset", "_cdf_length", "prior_counts", "train_batches")
#: training-only modules (RVQGAN discriminators and mel loss): not needed for coding, not shipped
TRAINING_ONLY = ("discriminator.", "mel_loss.")


def _from_lightning(src: Path, ck: dict):
    """(codec class, config, state_dict, training record) of a Lightning training checkpoint."""
    sd = ck["state_dict"]
    hp = dict(ck.get("hyper_parameters", {}))
    dm = dict(ck.get("datamodule_hyper_parameters", {}))
    info = dict(ck.get("codec_training", {}))
    training = {
        "source": src.name, "steps": int(ck.get("global_step", 0)), "lr": hp.get("lr"),
        "batch": dm.get("batch_size"), "hardware": info.get("hardware"), "world_size": info.get("world_size"),
        "train_seconds": round(float(info.get("train_seconds", 0.0)), 1), "torch": info.get("torch"),
    }
    cls_name = str(hp.get("_class_path", "")).rsplit(".", 1)[-1]
    from codec.codecs.audio.models import AUDIO_CODECS
    from codec.codecs.video.models import VIDEO_CODECS

    if cls_name in VIDEO_CODECS:
        model = VIDEO_CODECS[cls_name](**{k: v for k, v in hp.items() if not k.startswith("_") and k not in ("image_sha256", "init_from")},
                                       image_sha256=info.get("image_sha256"))
        config = model.config()
        training.update({"loss": "rate of the P-frame latents under the temporal prior (image codec frozen)",
                         "stage": "temporal prior on frozen image-codec latents (no joint fine-tune)",
                         "data": dm.get("train"), "validation": dm.get("val") or
                         f"last {dm.get('val_fraction')} of each training clip's frames",
                         "frames_per_group": dm.get("frames"), "crop": dm.get("crop_size"),
                         "max_frames_per_clip": dm.get("max_frames")})
        return cls_name, config, sd, {k: v for k, v in training.items() if v is not None}
    from codec.codecs.wavelet.models import WAVELET_CODECS

    if cls_name in AUDIO_CODECS:
        kw = {k: v for k, v in hp.items() if not k.startswith("_") and k != "init_from"}
        model = AUDIO_CODECS[cls_name](**dict(kw, train_parts=False))
        config = model.config()
        training.update({"loss": f"mel x{hp.get('mel_weight')} + commitment x{hp.get('commitment_weight')} + "
                                 f"codebook x{hp.get('codebook_weight')}" +
                                 (f"; GAN (adv x{hp.get('adv_weight')}, feature matching x{hp.get('fm_weight')}) "
                                  f"from batch {hp.get('disc_start')}"
                                  if int(hp.get("disc_start") or 0) < int(ck.get("global_step", 0)) else
                                  "; discriminators never switched on (disc_start beyond the steps run)"),
                         "batches": int(sd["train_batches"]) if "train_batches" in sd else None,
                         "data": dm.get("train"), "validation": dm.get("val"), "excerpt": dm.get("excerpt"),
                         "sample_rate": dm.get("sample_rate"), "loudness": dm.get("loudness"),
                         "quantizer_dropout": hp.get("quantizer_dropout")})
        return cls_name, config, sd, {k: v for k, v in training.items() if v is not None}

    if cls_name in WAVELET_CODECS:
        model = WAVELET_CODECS[cls_name](**{k: v for k, v in hp.items() if not k.startswith("_")
                                            and k != "init_from"})
        config = model.config()
        training.update({"loss": "mse", "data": dm.get("train_dirs") or dm.get("train"),
                         "validation": dm.get("val_dir") or dm.get("val"),
                         "crop": dm.get("crop_size"), "excerpt": dm.get("excerpt"),
                         "sample_rate": dm.get("sample_rate"), "loudness": dm.get("loudness"),
                         "prior": "context-model symbol counts, EMA over training latents "
                                  f"(decay {hp.get('prior_decay')})"})
        return cls_name, config, sd, {k: v for k, v in training.items() if v is not None}
    if "g_a.0.weight" not in sd:
        raise CheckpointError(f"{src} does not hold a known codec (class {hp.get('_class_path')!r}, no g_a weights)")
    cls = _infer_image_class(sd)
    config = {"class": cls, "N": int(sd["g_a.0.weight"].shape[0]), "M": int(sd["g_a.6.weight"].shape[0])}
    training.update({"lambda": hp.get("lmbda"), "metric": hp.get("metric"), "crop": dm.get("crop_size"),
                     "data": dm.get("train_dirs"), "validation": dm.get("val_dir")})
    return cls, config, sd, training


def export(ckpt_path, name: str, out_dir=None, family: str | None = None, quality: int | None = None,
           force: bool = False, update_manifest: bool = True, extra: dict | None = None,
           prior: dict | None = None) -> dict:
    """Turn a Lightning training checkpoint into a shipped one: weights rounded to float16, integer CDF tables
    computed from them and frozen, optimiser state dropped, sha256 recorded in the manifest. Returns the entry.

    ``prior`` (RVQGAN): token-prior settings (``prior_contexts``, ``prior_alpha``, ``prior_mode``,
    ``prior_uniform``, ``prior_augment``) that replace the checkpoint's; the prior is then refitted on the training
    audio the checkpoint records (a Lightning checkpoint's data module, or a shipped checkpoint's training record)."""
    import torch

    src = Path(ckpt_path)
    if not src.is_file():
        raise CheckpointError(f"training checkpoint not found: {src}")
    from torch.torch_version import TorchVersion  # a str subclass older training checkpoints hold

    try:
        with torch.serialization.safe_globals([TorchVersion]):
            ck = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{src} is not a loadable Lightning checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(ck, dict) or "state_dict" not in ck:
        raise CheckpointError(f"{src} is not a Lightning training checkpoint (no state_dict)")
    if ck.get("format") == FORMAT and {"codec", "config", "state_dict"} <= set(ck):
        # a shipped checkpoint: rebuild its tables (e.g. after a change of the scale grid), keep its record
        cls, config = ck["codec"], dict(ck["config"])
        sd = {k: (v.float() if v.is_floating_point() else v) for k, v in ck["state_dict"].items()}
        training = dict(ck.get("training", {}))
    else:
        cls, config, sd, training = _from_lightning(src, ck)
    if prior:
        if not isinstance(prior, dict):
            raise CheckpointError("prior settings must be a JSON object")
        known = ({"context_cross", "prior_smoothing", "context_nn"} if cls in ("Codec2D",) else
                 {"prior_contexts", "prior_alpha", "prior_mode", "prior_uniform", "prior_augment"})
        if cls not in ("RVQGAN", "Codec2D"):
            raise CheckpointError(f"--prior applies to RVQGAN and WaLLoC image checkpoints, not {cls}")
        bad = set(prior) - known
        if bad:
            kind = "token-prior" if cls == "RVQGAN" else "context-prior"
            raise CheckpointError(f"unknown {kind} settings {sorted(bad)} for {cls} (known: {sorted(known)})")
        config.update(prior)
        training.pop("prior", None)
        sd = {k: v for k, v in sd.items() if not k.startswith("cnn_")}  # context networks are refitted
    model = _build(cls, config)
    model.load_weights(sd)
    params = {n for n, _ in model.named_parameters()}
    with torch.no_grad():  # parameters are stored as float16; float buffers (bounds, scale table) stay float32
        for n, p in model.named_parameters():
            p.copy_(p.half().float())
    if hasattr(model, "gaussian_conditional"):  # tables on our scale grid, whatever grid training used
        from codec.entropy.models import default_scale_table

        model.gaussian_conditional.scale_table = default_scale_table()
    model.eval()
    if (hasattr(model, "prepare_export") and float(model.prior_counts.sum()) == 0 and "tables" not in ck
            and "datamodule_hyper_parameters" in ck):  # RVQGAN: fit the token prior on the training audio
        training.update(model.prepare_export(dict(ck["datamodule_hyper_parameters"])))
    elif (prior or getattr(model, "needs_refit", False)) and cls == "Codec2D":
        # WaLLoC image model with new context settings (or an unfitted neural context model): refit on its images
        if not training.get("data"):
            raise CheckpointError(f"{src} records no training images to refit the context-model prior on")
        training.update(model.refit_prior(training["data"]))
        ck.pop("tables", None)
    elif prior:  # a shipped RVQGAN with new prior settings: refit on the training audio it records
        dm = dict(ck.get("datamodule_hyper_parameters") or {})
        if not dm.get("train"):
            if not training.get("data"):
                raise CheckpointError(f"{src} records no training audio to refit the token prior on")
            dm = {"train": training["data"], "loudness": training.get("loudness", -24.0)}
        training.update(model.prepare_export(dm))
        ck.pop("tables", None)
    if "prior_counts" in dict(model.named_buffers()) and float(model.prior_counts.sum()) == 0 and "tables" in ck:
        # a shipped WaLLoC checkpoint keeps its frozen tables (its symbol counts are not shipped)
        from codec.entropy import CdfTables

        model.set_tables({k: CdfTables.from_state_dict(v) for k, v in ck["tables"].items()})
        tables = model.tables
    else:
        tables = model.freeze_tables()
    out_dir = Path(out_dir) if out_dir else checkpoints_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / f"{name}.pt"
    if dst.exists() and not force:
        raise CheckpointError(f"{dst} exists; pass --force to replace it")
    if extra:
        training.update(extra)
    training = json.loads(json.dumps(training, default=str))  # plain types only (weights_only loading)
    shipped = model.shipped_state_dict() if hasattr(model, "shipped_state_dict") else model.state_dict()
    payload = {
        "format": FORMAT, "name": name, "codec": cls, "modality": modality_of(model), "config": config,
        "state_dict": {k: (v.half() if k in params and v.is_floating_point() else v).contiguous()
                       for k, v in shipped.items()
                       if not k.endswith(NOT_SHIPPED) and not k.startswith(TRAINING_ONLY)},
        "tables": {k: t.state_dict() for k, t in tables.items()},
        "training": training,
    }
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)  # (re-exporting a shipped file onto itself is fine: it was read above)
    os.replace(tmp, dst)
    entry = {
        "name": name, "family": family, "quality": quality, "modality": modality_of(model), "codec": cls,
        "config": config,
        "file": dst.name, "sha256": sha256_file(dst), "bytes": dst.stat().st_size,
        "params": int(sum(v.numel() for k, v in shipped.items() if k in params)),
        "training": training,
    }
    if update_manifest:
        try:
            manifest = load_manifest(out_dir)
        except CheckpointError:
            manifest = {"format": 1, "defaults": {}, "models": []}
        models = [m for m in manifest.get("models", []) if m.get("name") != name]
        models.append(entry)
        manifest["models"] = sorted(models, key=lambda m: (m.get("family") or "", m.get("quality") or 0, m["name"]))
        write_manifest(manifest, out_dir)
    return entry
