"""``codec export``: a training checkpoint (``train/fit.py``) or a shipped checkpoint -> a standalone shipped file.

Generic over codecs: the training checkpoint names its codec class and constructor arguments
(``hyper_parameters["codec"]``: ``class_path``, ``init_args``); the class (from the registry,
:func:`codec.codecs.base.codec_class`) rebuilds the model, fits what its decoder needs
(:meth:`~codec.codecs.base.CodecModule.prepare_export`) and writes the checkpoint
(:meth:`~codec.codecs.base.CodecModule.export`). The file goes where the caller says; adding it to the shipped
manifest (``checkpoints/manifest.json``) is a separate, explicit option.
"""

from __future__ import annotations

import json
from pathlib import Path

from codec.checkpoints import FORMATS, load_manifest, sha256_file, stored_weights, torch_load, user_dir, write_manifest
from codec.config import atomic_write
from codec.errors import CheckpointError


def _load(src: Path) -> dict:
    ck = torch_load(src)
    if "state_dict" not in ck:
        raise CheckpointError(f"{src} is not a codec checkpoint (no state_dict)")
    return ck


def _source(src: Path, ck: dict) -> dict:
    """What an export starts from: codec class, config, weights, data settings, record and tables."""
    from codec.codecs.base import codec_class
    from codec.entropy import CdfTables

    hp = ck.get("hyper_parameters") or {}
    if ck.get("format") in FORMATS and {"codec", "config", "state_dict"} <= set(ck):
        # a shipped checkpoint: re-exported (new tables or prior settings), its record and weight storage kept
        cls = codec_class(ck["codec"], ck.get("module"))
        sd = stored_weights(ck, src)
        try:
            tables = {k: CdfTables.from_state_dict(v) for k, v in (ck.get("tables") or {}).items()} or None
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{src}: bad CDF tables ({e})") from None
        return {"cls": cls, "config": dict(ck["config"]), "state_dict": sd, "data": {},
                "training": dict(ck.get("training", {})), "tables": tables,
                "weight_bits": 8 if ck.get("scales") else 16}
    spec = hp.get("codec")
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        raise CheckpointError(f"{src} is neither a training checkpoint of a codec (train/fit.py, CodecTask) nor a "
                              "shipped checkpoint")
    module, _, name = spec["class_path"].rpartition(".")
    cls = codec_class(name, module)
    args = dict(spec.get("init_args") or {})
    data = dict(ck.get("datamodule_hyper_parameters") or {})
    info = dict(ck.get("codec_training") or {})
    training = {"source": src.name, "steps": int(ck.get("global_step", 0)), "hardware": info.get("hardware"),
                "world_size": info.get("world_size"),
                "train_seconds": round(float(info.get("train_seconds", 0.0)), 1), "torch": info.get("torch"),
                "precision": info.get("precision"), "channels_last": info.get("channels_last")}
    training.update(cls.training_record(args, data, ck))
    model = cls.from_training(args, ck)
    sd = {k[len("codec."):]: v for k, v in ck["state_dict"].items() if k.startswith("codec.")}
    sd = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}  # NCHW if channels_last
    return {"cls": cls, "config": model.config(), "model": model, "state_dict": sd, "data": data,
            "training": {k: v for k, v in training.items() if v is not None}, "tables": None, "weight_bits": 16}


def export(ckpt_path, out=None, *, name: str | None = None, family: str | None = None, quality: int | None = None,
           force: bool = False, add_to_manifest: bool = False, extra: dict | None = None,
           prior: dict | None = None, weight_bits: int | None = None) -> dict:
    """Write a shipped checkpoint: parameters rounded to float16 (or 8-bit codes, ``weight_bits=8``), integer CDF
    tables frozen from them, optimiser state dropped. Returns its manifest entry.

    ``out``: the file to write (required unless ``add_to_manifest``). ``add_to_manifest``: write
    ``<folder>/<name>.pt`` (the first ``CODEC_CHECKPOINTS`` folder, else the shipped ``checkpoints/``) (or ``out``) and record it, with ``family`` / ``quality``, in the manifest of
    that folder. ``prior``: export-time settings the codec refits (``--prior``: an RVQGAN's token prior, a WaLLoC
    image model's context prior). ``weight_bits``: 16 (float16) or 8 (int8 codes per output channel for the large
    matrices and kernels, :func:`codec.checkpoints.quantize_int8`); default: a training checkpoint 16, a shipped one
    as it is stored."""
    import torch

    from codec.codecs.base import build_codec

    src = Path(ckpt_path)
    if out is None and not add_to_manifest:
        raise CheckpointError("say where to write the exported checkpoint (-o FILE.pt), or add it to the shipped "
                              "models with --add-to-manifest --name NAME")
    if out is None:
        if not name:
            raise CheckpointError("--add-to-manifest needs --name (the model's name in the manifest)")
        out = user_dir() / f"{name}.pt"
    dst = Path(out)
    if dst.suffix != ".pt":
        raise CheckpointError(f"the exported checkpoint must be a .pt file, not {dst.name}")
    name = name or dst.stem
    if dst.exists() and not force:
        raise CheckpointError(f"{dst} exists; pass --force to replace it")
    if not dst.parent.is_dir():
        raise CheckpointError(f"folder {dst.parent} does not exist")
    if weight_bits not in (None, 8, 16):
        raise CheckpointError(f"--weight-bits must be 16 (float16) or 8 (int8 codes), not {weight_bits}")
    s = _source(src, _load(src))
    cls, config, sd = s["cls"], s["config"], s["state_dict"]
    bits = weight_bits or s["weight_bits"]
    model = s.get("model")  # a training checkpoint's codec, built once
    if prior:
        config, sd = cls.apply_export_options(config, sd, prior)
        s["training"].pop("prior", None)
        model = None
    if model is None:
        model = build_codec(config, cls.__module__)
    model.load_weights(sd)
    model.round_weights(bits)
    model.eval()
    training = dict(s["training"])
    training.update(model.prepare_export({"data": s["data"], "training": training, "tables": s["tables"],
                                          "options": dict(prior or {})}))
    if extra:
        training.update(extra)
    payload = model.export(name, training, freeze=model._tables is None, weight_bits=bits)
    atomic_write(dst, lambda tmp: torch.save(payload, tmp), force=True)  # (a shipped file re-exported onto itself
    # is fine: it was read above)
    entry = {"name": name, "family": family, "quality": quality, "modality": model.modality,
             "codec": type(model).__name__,
             **({"module": payload["module"]} if "module" in payload else {}),
             "config": payload["config"], "file": dst.name, "sha256": sha256_file(dst), "bytes": dst.stat().st_size,
             "params": model.num_parameters(), **({"weight_bits": 8} if bits == 8 else {}),
             "training": payload["training"]}
    if add_to_manifest:
        try:
            manifest = load_manifest(dst.parent)
        except CheckpointError:
            manifest = {"format": 1, "defaults": {}, "models": []}
        models = [m for m in manifest.get("models", []) if m.get("name") != name]
        models.append(entry)
        manifest["models"] = sorted(models, key=lambda m: (m.get("family") or "", m.get("quality") or 0, m["name"]))
        write_manifest(manifest, dst.parent)
    return json.loads(json.dumps(entry, default=str))
