"""The checkpoint registry: ``checkpoints/manifest.json`` lists every shipped model (name, codec class, config,
file, sha256, parameter count, training data and duration, measured RD points).

Shipped checkpoint files (``checkpoints/<name>.pt``) are plain ``torch.save`` dicts of tensors and primitive types,
loaded with ``torch.load(weights_only=True)`` (nothing is unpickled):

    {"format": 1, "codec": "MeanScaleHyperprior", "modality": "image", "config": {...},
     "state_dict": {...},          # parameters stored as float16; buffers (bounds, scale table, CDFs) as they are
     "tables": {"bottleneck": CdfTables.state_dict(), "gaussian": ...},   # integer CDF tables, frozen at export
     "training": {...}}            # what it was trained on and for how long

Format 2 (``codec export --weight-bits 8``) adds ``"scales": {name: float32 [out_channels]}``: those parameters are
stored in ``state_dict`` as int8 ``q`` in [-127, 127] and loaded as ``q * scale`` per output channel (dim 0), one
float32 multiplication, so every machine loads the same weights (:func:`stored_weights`). A loader that only knew
format 1 refuses such a file instead of loading int8 codes as weights.

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
#: the format of a checkpoint with 8-bit weights (``"scales"``)
FORMAT_INT8 = 2
FORMATS = (FORMAT, FORMAT_INT8)
#: which parameters ``--weight-bits 8`` stores as int8: matrices and kernels of at least this many values (biases,
#: norms and small tensors stay float16, where 8 bits would save little and cost the most precision)
INT8_MIN_NUMEL = 1024


def checkpoints_dir() -> Path:
    """The shipped models' folder: the checkout's ``checkpoints/``, else the copy installed with the wheel."""
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


def extra_dirs() -> list[Path]:
    """Folders of one's own models, from ``CODEC_CHECKPOINTS`` (separated by ``os.pathsep``), added to the shipped
    ones: each may hold a ``manifest.json`` (as ``codec export --add-to-manifest`` writes) and ``.pt`` files,
    which are found by their stem name even without one."""
    env = os.environ.get("CODEC_CHECKPOINTS", "")
    return [Path(e).expanduser().resolve() for e in env.split(os.pathsep) if e.strip()]


def user_dir() -> Path:
    """Where ``codec export --add-to-manifest`` writes: the first ``CODEC_CHECKPOINTS`` folder, else the shipped
    folder (a checkout's ``checkpoints/``)."""
    extra = extra_dirs()
    return extra[0] if extra else checkpoints_dir()


def load_manifest(folder: Path | None = None) -> dict:
    """The manifest of ``folder`` (default: the shipped one) as written, for reading and rewriting; lookups go
    through :func:`all_models`, which adds the ``CODEC_CHECKPOINTS`` folders."""
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


def all_models() -> dict:
    """The shipped manifest with the ``CODEC_CHECKPOINTS`` folders' models added: ``{"models": [...], "defaults":
    {...}}``; each entry from another folder carries its ``folder``. A folder's ``defaults`` replace the shipped
    ones for the modalities it names; a model name in two folders is an error."""
    merged = load_manifest()
    models = [dict(m) for m in merged.get("models", [])]
    where = {m["name"]: checkpoints_dir() for m in models if "name" in m}
    defaults = dict(merged.get("defaults", {}))
    for d in extra_dirs():
        if not d.is_dir():
            raise CheckpointError(f"CODEC_CHECKPOINTS names {d}, which is not a folder")
        entries = []
        if (d / "manifest.json").exists():
            m = load_manifest(d)
            entries = [dict(e, folder=str(d)) for e in m.get("models", [])]
            defaults.update(m.get("defaults", {}))
        listed = {e.get("file") for e in entries}
        entries += [{"name": f.stem, "file": f.name, "folder": str(d)} for f in sorted(d.glob("*.pt"))
                    if f.name not in listed]
        for e in entries:
            if e.get("name") in where:
                raise CheckpointError(f"model {e['name']!r} is in both {where[e['name']]} and {d}; rename one")
            where[e.get("name")] = d
            models.append(e)
    return {**merged, "models": models, "defaults": defaults}


def retired_checkpoint(fingerprint: bytes) -> dict | None:
    """The manifest's record (``"retired"``: name, fingerprint, commit, file) of a checkpoint that was shipped once
    and has since been replaced or removed, by the fingerprint a file's header carries; None if none matches (or no
    manifest can be read). The shipped manifest first, then the ``CODEC_CHECKPOINTS`` folders'."""
    want = fingerprint.hex()
    folders = [None] + [d for d in extra_dirs() if (d / "manifest.json").exists()]
    for d in folders:
        try:
            retired = load_manifest(d).get("retired", [])
        except CheckpointError:
            continue
        for r in retired if isinstance(retired, list) else []:
            if isinstance(r, dict) and r.get("fingerprint") == want and {"name", "commit", "file"} <= set(r):
                return r
    return None


def retired_hint(fingerprint: bytes) -> str:
    """``; it was made with <name> as shipped until commit C: git show C:FILE > NAME.pt ...`` for an error message,
    or "" when the fingerprint is not a retired checkpoint's."""
    r = retired_checkpoint(fingerprint)
    if r is None:
        return ""
    return (f"; it was made with {r['name']} as shipped at commit {r['commit']}: get that checkpoint with "
            f"`git show {r['commit']}:{r['file']} > {r['name']}.pt` and put it beside the file")


def entry_folder(entry: dict) -> Path:
    return Path(entry["folder"]) if entry.get("folder") else checkpoints_dir()


def write_manifest(manifest: dict, folder: Path | None = None) -> None:
    from codec.config import atomic_write

    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write((folder or checkpoints_dir()) / "manifest.json", lambda tmp: tmp.write_text(text), force=True)


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
    manifest = manifest if manifest is not None else all_models()
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
        levels = (e.get("config") or {}).get("qualities")
        if quality is not None and levels:  # one variable-rate model: the quality goes to its compress()
            if not 1 <= int(quality) <= int(levels):
                raise CheckpointError(f"model {model!r} has qualities 1 to {levels}, not {quality}")
            return e
        if quality is not None and e.get("quality") != quality:
            if not e.get("family"):
                raise CheckpointError(f"model {model!r} is a single model without quality levels; drop --quality")
            raise CheckpointError(f"model {model!r} is quality {e.get('quality')} of the family {e['family']!r}; "
                                  f"for another quality use --model {e['family']} --quality {quality}")
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
# weight storage
# --------------------------------------------------------------------------------------------------------------
def int8_eligible(name: str, v, skip: tuple = ()) -> bool:
    """Whether ``--weight-bits 8`` stores this parameter as int8 (a float matrix or kernel of INT8_MIN_NUMEL values or
    more, not under a ``skip`` prefix such as an RVQ's codebooks)."""
    return (v.is_floating_point() and v.dim() >= 2 and v.numel() >= INT8_MIN_NUMEL
            and not any(s in name for s in skip))


def quantize_int8(w):
    """Symmetric 8-bit codes per output channel (dim 0): ``(q int8 in [-127, 127], scale float32 [out])`` with
    ``dequantize_int8(q, scale)`` the nearest such weights (a channel of zeros gets scale 0)."""
    import torch

    flat = w.detach().float().reshape(w.shape[0], -1)
    scale = flat.abs().amax(1) / 127
    for _ in range(4):  # a scale that 127 * scale / 127 gives back, so quantising the loaded weights again (a
        again = scale * 127 / 127  # re-export) finds the same scales and codes
        if torch.equal(again, scale):
            break
        scale = again
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(flat / safe[:, None]).clamp_(-127, 127)
    q[scale == 0] = 0
    return q.to(torch.int8).reshape(w.shape).contiguous(), scale.contiguous()


def dequantize_int8(q, scale):
    """float32 weights ``q * scale`` (one IEEE multiplication per value: the same on every machine)."""
    return q.float() * scale.float().reshape(-1, *([1] * (q.dim() - 1)))


def stored_weights(ck: dict, path="checkpoint") -> dict:
    """A shipped checkpoint's ``state_dict`` as the model holds it: float parameters as float32, int8 ones (format 2,
    ``scales``) dequantised; a scale table that does not fit its codes is a corrupt checkpoint."""
    import torch

    sd, scales = ck["state_dict"], ck.get("scales") or {}
    if not isinstance(scales, dict):
        raise CheckpointError(f"{path}: bad weight scales (not a table)")
    out = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    for k, s in scales.items():
        q = sd.get(k)
        if (q is None or not isinstance(s, torch.Tensor) or q.dtype != torch.int8 or q.dim() < 1
                or s.shape != (q.shape[0],) or not s.is_floating_point() or not bool(torch.isfinite(s).all())
                or bool((s < 0).any())):
            raise CheckpointError(f"{path}: the 8-bit weights of {k!r} do not fit their scales (corrupt checkpoint)")
        out[k] = dequantize_int8(q, s)
    if ck.get("format") == FORMAT_INT8 and not scales:
        raise CheckpointError(f"{path}: format {FORMAT_INT8} (8-bit weights) without weight scales (corrupt checkpoint)")
    unscaled = [k for k, v in sd.items() if v.dtype == torch.int8 and k not in scales]
    if unscaled:  # loaded as they are, int8 codes would become weights 127 times too large
        raise CheckpointError(f"{path}: 8-bit weights of {unscaled[0]!r} without a scale (corrupt checkpoint)")
    return out


# --------------------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------------------
def torch_load(path, data: bytes | None = None) -> dict:
    """A checkpoint file (shipped, Lightning or a bare state_dict) as a dict, with ``weights_only`` loading
    (nothing is unpickled but tensors and plain types). ``data``: the file's contents when the caller has already
    read them (to hash them), so the file is read once; ``path`` then only names it in errors."""
    import io

    import torch
    from torch.torch_version import TorchVersion  # a str subclass that training checkpoints hold

    path = Path(path)
    if data is None and not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([TorchVersion]):
            ck = torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a bad checkpoint
        raise CheckpointError(f"{path} is not a loadable checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path} is not a codec checkpoint (not a dict)")
    return ck


def load_checkpoint_file(path, expected_sha256: str | None = None, name: str = ""):
    """Load a shipped (exported) checkpoint file into a ready-to-code model (eval mode, tables frozen)."""
    from codec.entropy import CdfTables

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint file not found: {p}")
    if expected_sha256 and sha256_file(p) != expected_sha256:
        raise CheckpointError(f"{p} does not match the sha256 in the manifest (corrupt or replaced file)")
    ck = torch_load(p)
    if "state_dict" in ck and "pytorch-lightning_version" in ck:
        raise CheckpointError(f"{p} is a Lightning training checkpoint; turn it into a shipped one with "
                              f"`codec export {p} --name NAME`")
    if ck.get("format") not in FORMATS or not {"codec", "config", "state_dict", "tables"} <= set(ck):
        raise CheckpointError(f"{p} is not a codec checkpoint (format {' or '.join(map(str, FORMATS))} with "
                              "codec/config/state_dict/tables)")
    from codec.codecs.base import build_codec

    model = build_codec(ck["config"] if isinstance(ck["config"], dict) else {}, ck.get("module"))
    if type(model).__name__ != ck["codec"]:
        raise CheckpointError(f"{p}: its config builds {type(model).__name__}, its header says {ck['codec']}")
    sd = stored_weights(ck, p)
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


def load_pinned(spec: str, expected_sha256: str | None = None, modality: str = "image", purpose: str = "pinned to"):
    """A fresh (not the process-wide cached) copy of a model that another model builds on: ``(model, name,
    sha256)``. ``spec``: a shipped name or a ``.pt`` file; ``expected_sha256``: the file it must be (else an error
    that starts with ``purpose``)."""
    s = str(spec)
    if s.endswith(".pt") or "/" in s:
        p = Path(s)
        if not p.is_file():
            raise CheckpointError(f"{modality} checkpoint not found: {p}")
        sha, name = sha256_file(p), p.stem
        model = load_checkpoint_file(p, name=name)
    else:
        e = resolve_entry(s, None, modality)
        sha, name = e.get("sha256", ""), e["name"]
        model = load_checkpoint_file(entry_folder(e) / e["file"], sha, name=name)
    if expected_sha256 and sha != expected_sha256:
        raise CheckpointError(f"{purpose} {s!r} with sha256 {expected_sha256[:16]}..., the shipped one is "
                              f"{sha[:16]}...: re-train or re-export the model for it")
    return model, name, sha


_CACHE: dict = {}


def load_model(model: str | None = None, quality: int | None = None, modality: str = "image"):
    """A shipped model by name / family (+ quality), or a checkpoint file path. Cached per process."""
    if model is not None and (model.endswith(".pt") or os.sep in model or "/" in model):
        p = Path(model)
        key = ("file", str(p.resolve()), p.stat().st_mtime if p.exists() else 0)
        if key not in _CACHE:
            _CACHE[key] = load_checkpoint_file(p, name=p.stem)
        return _CACHE[key]
    e = resolve_entry(model, quality, modality)
    folder = entry_folder(e)
    key = ("entry", str(folder), e["name"], e.get("sha256"))
    if key not in _CACHE:
        _CACHE[key] = load_checkpoint_file(folder / e["file"], e.get("sha256"), name=e["name"])
    return _CACHE[key]
