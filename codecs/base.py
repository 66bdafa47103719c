"""The codec contract every family subclasses (:class:`CodecModule`), and the one registry of codec classes.

A codec is a plain ``torch.nn.Module``; coding (CLI, API, evaluation) never imports the training stack. Training is
driven by :class:`codec.train.task.CodecTask`, a LightningModule that holds a codec and calls its training hooks
(:meth:`CodecModule.training_step` etc.), the way CompressAI and DAC keep their training loops outside the model.

A family (or a researcher's new codec, see ``docs/custom_codec.md``) provides only its transforms, priors and losses:

- ``__init__(...)`` builds the networks and calls :meth:`CodecModule.save_hyperparameters`;
- ``config()``: a plain dict that rebuilds the architecture (``from_config`` is its inverse);
- ``forward(x)``: reconstruction and rate terms for training;
- ``_compute_tables()``: the integer CDF tables (:class:`codec.entropy.CdfTables`) frozen at export;
- ``_compress(x) -> (Payload, symbols)`` and ``_decompress(payload) -> (x_hat, symbols)``: real bytes through
  :mod:`codec.entropy`; the base adds and verifies the checksum of the quantised symbols;
- training hooks: ``configure_optimizers(task)``, ``training_step(task, batch, i)``, ``validation_step(...)``,
  and ``training_parts()`` for modules only training needs (discriminators, loss networks).

The base carries the rest: hyper-parameters, tables and fingerprints, weight loading (``init_from``, shipped and
Lightning checkpoints, CompressAI state_dicts), padding, the payload checksum and :meth:`CodecModule.export`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.bitstream import DIVERGED, MAX_AUDIO_CHANNELS, Payload, symbols_checksum
from codec.entropy import CdfTables
from codec.errors import BitstreamError, CheckpointError, CodecError, DivergenceError

#: the shipped checkpoint format written by :meth:`CodecModule.export`
CHECKPOINT_FORMAT = 1
#: the families shipped with the package (imported on demand by :func:`codec_class`)
FAMILIES = ("codec.codecs.image", "codec.codecs.wavelet", "codec.codecs.audio", "codec.codecs.video")

_REGISTRY: dict[str, type] = {}
#: CompressAI's cached integer CDFs (rebuilt by ``update()``): exported checkpoints keep CdfTables instead
CDF_CACHES = ("_quantized_cdf", "_offset", "_cdf_length")


def register_codec(cls):
    """Class decorator: make a codec class known by its name to loading, export and the CLI."""
    name = cls.__name__
    old = _REGISTRY.get(name)
    if old is not None and old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise CodecError(f"two codec classes are named {name!r} ({old.__module__} and {cls.__module__}); "
                         "rename one")
    _REGISTRY[name] = cls
    return cls


def registered_codecs() -> dict[str, type]:
    """Every registered codec class by name (the shipped families are imported first)."""
    for fam in FAMILIES:
        importlib.import_module(fam)
    return dict(_REGISTRY)


def codec_class(name: str, module: str | None = None) -> type:
    """The registered class ``name``. A checkpoint of a codec defined outside the package records its ``module``,
    which is imported (it must be importable: installed, or on PYTHONPATH)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if module and not module.startswith("codec."):
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise CheckpointError(f"codec class {name!r} is defined in module {module!r}, which cannot be imported "
                                  f"({e}); install it or add its folder to PYTHONPATH") from None
        if name in _REGISTRY:
            return _REGISTRY[name]
        cls = getattr(mod, name, None)
        if isinstance(cls, type) and issubclass(cls, CodecModule):  # a codec class its module did not register
            return register_codec(cls)
    for fam in FAMILIES:
        importlib.import_module(fam)
        if name in _REGISTRY:
            return _REGISTRY[name]
    raise CheckpointError(f"unknown codec class {name!r}; registered: {', '.join(sorted(_REGISTRY))}")


def build_codec(config: dict, module: str | None = None) -> "CodecModule":
    """Rebuild a codec from its :meth:`CodecModule.config`."""
    if not isinstance(config, dict) or not isinstance(config.get("class"), str):
        raise CheckpointError(f"a codec config must be a dict with a 'class' entry, got {config!r}")
    cls = codec_class(config["class"], module)
    try:
        return cls.from_config(config)
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"config does not build {config['class']}: {e}") from None


class HParams(dict):
    """The constructor arguments of a codec (``self.hparams.lr`` or ``self.hparams["lr"]``)."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def hardware_description(device=None) -> str:
    """The device a run trained on, for training records."""
    import platform

    if device is not None and getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def read_state_dict(path, loaded: dict | None = None) -> dict:
    """The weights in a training checkpoint (a CodecTask's ``codec.*``), a shipped checkpoint or a bare
    state_dict (e.g. CompressAI's), as float32. ``loaded``: the file's contents when the caller has already read it
    (``path`` then only names it in errors)."""
    from codec.checkpoints import torch_load

    p = Path(path)
    ck = torch_load(p) if loaded is None else loaded
    if "scales" in ck and "state_dict" in ck:  # a shipped checkpoint with 8-bit weights
        from codec.checkpoints import stored_weights

        return stored_weights(ck, p)
    sd = ck.get("state_dict", ck)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{p} holds no state_dict")
    if any(k.startswith("codec.") for k in sd):
        sd = {k[len("codec."):]: v for k, v in sd.items() if k.startswith("codec.")}
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}


def pad_to(x: torch.Tensor, multiple: int, dims: int, mode: str = "replicate") -> torch.Tensor:
    """Pad the last ``dims`` dimensions of x at their end up to a multiple of ``multiple``."""
    pads = []
    for n in reversed(x.shape[-dims:]):
        pads += [0, (-n) % multiple]
    return F.pad(x, pads, mode=mode) if any(pads) else x


class CodecModule(nn.Module):
    """Base of every codec: the contract of ``../shared/DESIGN.md`` (module docstring)."""

    #: codec name written into bitstream headers
    codec_name = "codec"
    #: "image", "audio" or "video"
    modality = "image"
    #: inputs are padded to a multiple of this (per spatial / temporal dimension)
    stride = 1
    #: when set, the table fingerprint is this one table's (single-table codecs); else a hash over all tables
    single_table: str | None = None
    #: state_dict entries (exact keys) left out of the checkpoint fingerprint: training statistics
    fingerprint_skip: tuple = ()
    #: suffixes of buffers that exported checkpoints leave out (the frozen tables replace them); their absence is
    #: accepted by :meth:`load_weights`
    not_shipped: tuple = CDF_CACHES
    #: prefixes of parts a model may add to the weights it starts from (:meth:`init_from`): missing there, they keep
    #: this model's initialisation
    init_from_new: tuple = ()
    #: whether :meth:`training_step` steps its own optimisers (Lightning manual optimisation)
    manual_optimization = False

    def __init__(self):
        super().__init__()
        self.hparams = HParams()
        self._tables: dict[str, CdfTables] | None = None
        self._fingerprint: bytes | None = None
        self.model_name = ""
        self.training_info: dict = {}

    # ------------------------------------------------------------------------------------------------ config
    def save_hyperparameters(self) -> None:
        """Record the constructor arguments in ``self.hparams`` (as Lightning's method of that name): those of
        every ``__init__`` in the chain that called it, a subclass's overriding its base's."""
        frame = inspect.currentframe().f_back
        hp: dict = {}
        while frame is not None and frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is self:
            info = inspect.getargvalues(frame)
            hp.update({a: info.locals[a] for a in info.args if a != "self"})
            frame = frame.f_back
        self.hparams = HParams(hp)

    def config(self) -> dict:
        """A plain dict that fully rebuilds the architecture, with ``class``: the registered class name."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> "CodecModule":
        return cls(**{k: v for k, v in config.items() if k != "class"})

    @property
    def device(self) -> torch.device:
        p = next(iter(self.parameters()), None)
        if p is None:
            p = next(iter(self.buffers()), None)
        return p.device if p is not None else torch.device("cpu")

    def model_name_or_class(self) -> str:
        return self.model_name or type(self).__name__

    # ------------------------------------------------------------------------------------------------ tables
    def _compute_tables(self) -> dict[str, CdfTables]:
        raise NotImplementedError

    def _reset_caches(self) -> None:
        """Forget everything derived from the weights or tables (fingerprint, compiled integer networks)."""
        self._fingerprint = None

    def freeze_tables(self) -> dict[str, CdfTables]:
        """Build the integer CDF tables from the current parameters (export time) and keep them."""
        self._tables = self._compute_tables()
        self._reset_caches()
        return self._tables

    def set_tables(self, tables: dict[str, CdfTables]) -> None:
        if self.single_table and self.single_table not in tables:
            raise CheckpointError(f"{type(self).__name__} checkpoint has no {self.single_table!r} tables")
        self._tables = dict(tables)
        self._reset_caches()

    @property
    def tables(self) -> dict[str, CdfTables]:
        if self._tables is None:
            raise CheckpointError(f"{type(self).__name__} has no frozen CDF tables: load an exported checkpoint "
                                  "(codec export) or call freeze_tables() after training")
        return self._tables

    def table_fingerprint(self) -> bytes:
        if self.single_table:
            return self.tables[self.single_table].fingerprint_bytes
        h = hashlib.blake2b(digest_size=16)
        for k in sorted(self.tables):
            h.update(k.encode() + self.tables[k].fingerprint_bytes)
        return h.digest()

    def _fingerprint_config(self) -> dict:
        return self.config()

    def _fingerprint_salt(self) -> bytes:
        """Extra bytes after the config (e.g. the version of the integer arithmetic a family depends on)."""
        return b""

    def _fingerprint_state(self) -> dict:
        return {k: v for k, v in self.state_dict().items() if k not in self.fingerprint_skip}

    def _fingerprint_tail(self) -> bytes:
        return self.table_fingerprint()

    def fingerprint(self) -> bytes:
        """16 bytes identifying config, weights and tables: goes into every bitstream header."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(repr(sorted(self._fingerprint_config().items())).encode())
            h.update(self._fingerprint_salt())
            for k, v in sorted(self._fingerprint_state().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            h.update(self._fingerprint_tail())
            self._fingerprint = h.digest()
        return self._fingerprint

    # ------------------------------------------------------------------------------------------------ weights
    def _prepare_state_dict(self, state_dict: dict) -> dict:
        """Adapt a state_dict before loading (e.g. resize CompressAI's CDF buffers)."""
        return state_dict

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state_dict = self._prepare_state_dict(dict(state_dict))
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._tables = None
        self._reset_caches()
        return out

    def _optional_key(self, key: str) -> bool:
        """Whether a state_dict entry may be absent or left over when loading weights."""
        return key.endswith(self.not_shipped)

    def load_weights(self, state_dict: dict) -> None:
        """Strict loading, except for the entries :meth:`_optional_key` allows (buffers exports leave out)."""
        try:
            missing, unexpected = self.load_state_dict(state_dict, strict=False)
        except RuntimeError as e:
            raise CheckpointError(f"weights do not fit {type(self).__name__} {self.config()}: "
                                  f"{str(e)[:300]}") from None
        missing = [k for k in missing if not self._optional_key(k)]
        unexpected = [k for k in unexpected if not self._optional_key(k)]
        if missing or unexpected:
            raise CheckpointError(f"weights do not fit {type(self).__name__} {self.config()}: missing "
                                  f"{missing[:5]}, unexpected {list(unexpected)[:5]}")

    def init_from(self, path, state_dict: dict | None = None) -> None:
        """Start from the weights of another run (a training checkpoint, a shipped checkpoint or a CompressAI
        state_dict of the same architecture). Only weights; an optimiser starts fresh. (Resuming a run is
        ``--ckpt_path``, which restores everything.) ``state_dict``: the weights when a subclass has already read
        and adapted them (``path`` then only names them in errors)."""
        sd = read_state_dict(path) if state_dict is None else state_dict
        if self.init_from_new:
            sd = {**{k: v for k, v in self.state_dict().items() if k.startswith(self.init_from_new)}, **sd}
        try:
            self.load_weights(sd)
        except CheckpointError as e:
            raise CheckpointError(f"init_from: {path}: {e}") from None

    def shipped_state_dict(self) -> dict:
        """What an exported checkpoint stores (training statistics and cached CDFs left out)."""
        return {k: v for k, v in self.state_dict().items() if not k.endswith(self.not_shipped)
                and k not in self.fingerprint_skip}

    # ------------------------------------------------------------------------------------------------ coding
    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad the spatial dimensions to a multiple of :attr:`stride` (replicated edges)."""
        return pad_to(x, self.stride, x.dim() - 2, "replicate")

    def _compress(self, x: torch.Tensor, **options) -> tuple[Payload, list]:
        raise NotImplementedError

    def _decompress(self, payload: Payload) -> tuple[torch.Tensor, list]:
        raise NotImplementedError

    @torch.no_grad()
    def compress(self, x: torch.Tensor, **options) -> Payload:
        """Code one input: a Payload of real bytes from :mod:`codec.entropy`, holding the checksum of the quantised
        symbols. An audio codec of C channels takes any channel count (see :meth:`channel_groups`)."""
        groups = self.channel_groups(x.shape[1]) if self.modality == "audio" and x.dim() == 3 else None
        if groups is None:
            payload, symbols = self._compress(x, **options)
            return dataclasses.replace(payload, checksum=symbols_checksum(*symbols))
        streams, ints, symbols = {}, {}, []
        for g, chans in enumerate(groups):
            part, syms = self._compress(x[:, chans], **options)
            streams.update({group_key(k, g): v for k, v in part.streams.items()})
            ints.update({group_key(k, g): v for k, v in part.ints.items()})
            symbols += syms
        return Payload(streams=streams, ints=ints, checksum=symbols_checksum(*symbols))

    @torch.no_grad()
    def decompress(self, payload: Payload) -> torch.Tensor:
        """Inverse of :meth:`compress`. Before decoding anything, the payload's geometry is checked against the
        symbol counts its coded streams announce (:meth:`expected_symbols`), so a forged header never makes the
        decoder allocate for content the streams do not hold. Raises DivergenceError when the decoded symbols (and,
        in format 3, the header) do not match the payload's checksum (a different model, an altered file, or a
        platform difference in a part that is not exact). Audio payloads with ``meta["channels"]`` (the container's
        geometry) come back with that many channels."""
        channels = payload.meta.get("channels") if self.modality == "audio" else None
        groups = self.channel_groups(int(channels)) if channels is not None else None
        n_groups = max((group_of(k) for k in (*payload.streams, *payload.ints)), default=0) + 1
        if self.modality == "audio" and n_groups != (1 if groups is None else len(groups)):
            raise BitstreamError(f"the header says {channels} channel(s), which this model codes in "
                                 f"{1 if groups is None else len(groups)} group(s); the payload holds {n_groups} "
                                 "(corrupt or forged file)")
        if groups is None:
            self._check_symbol_counts(payload)
            x_hat, symbols = self._decompress(payload)
        else:
            parts, symbols = [], []
            for g, chans in enumerate(groups):
                sub = Payload(streams={k: payload.streams[group_key(k, g)] for k in self._group_names(payload, g, "streams")},
                              ints={k: payload.ints[group_key(k, g)] for k in self._group_names(payload, g, "ints")})
                self._check_symbol_counts(sub)
                y, syms = self._decompress(sub)
                parts.append(y)
                symbols += syms
            n = min(y.shape[-1] for y in parts)
            if any(y.shape[-1] != n for y in parts):
                raise BitstreamError("the channel groups of this file decode to different lengths (corrupt)")
            x_hat = torch.cat(parts, 1)[:, :int(channels)]
        if not payload.matches(symbols_checksum(*symbols)):
            raise DivergenceError(DIVERGED.format(detail="symbols checksum mismatch"))
        return x_hat

    def channel_groups(self, c: int) -> list[list[int]] | None:
        """How an audio codec of ``self.channels`` channels codes ``c`` channels: None when it codes them as they
        are (the same count) or maps them itself (mono into a multichannel model is duplicated, and decoding takes
        the mean); otherwise groups of ``self.channels`` channels coded one after another, the last group padded by
        repeating its last channel (a mono model codes each channel on its own, a stereo one pairs)."""
        mc = int(getattr(self, "channels", 0) or 0)
        if mc < 1 or c == mc or c == 1:
            return None
        if not 1 <= c <= MAX_AUDIO_CHANNELS:
            raise CodecError(f"audio with {c} channels is not supported (1 to {MAX_AUDIO_CHANNELS})")
        groups = [list(range(s, min(s + mc, c))) for s in range(0, c, mc)]
        groups[-1] += [groups[-1][-1]] * (mc - len(groups[-1]))
        return groups

    @staticmethod
    def _group_names(payload: Payload, g: int, what: str) -> list[str]:
        names = [k for k in getattr(payload, what) if group_of(k) == g]
        if what == "streams" and not names:
            raise BitstreamError(f"the payload has no streams for channel group {g} (its channel count does not "
                                 "match its streams: corrupt or forged file)")
        return [base_key(k) for k in names]

    def expected_symbols(self, payload: Payload) -> dict[str, int]:
        """The number of symbols each coded stream must hold for the payload's geometry (``payload.ints``), checked
        against the counts the streams announce before anything is decoded. Override in codecs whose geometry
        sets the latent shapes (the shipped families do); the default checks nothing here (the entropy decoder
        still refuses to decode more symbols than a stream holds)."""
        return {}

    def _check_symbol_counts(self, payload: Payload, only=None) -> None:
        """Compare :meth:`expected_symbols` with the counts the streams announce (``only``: these streams)."""
        from codec.entropy.coder import stream_symbols
        from codec.errors import EntropyError

        for k, n in self.expected_symbols(payload).items():
            if only is not None and k not in only:
                continue
            if k not in payload.streams:
                raise BitstreamError(f"payload has no {k!r} stream")
            try:
                have = stream_symbols(payload.streams[k])
            except EntropyError:
                raise BitstreamError(f"stream {k!r} is not a coded stream (corrupt file)") from None
            if have is not None and have != n:
                raise BitstreamError(f"the header's geometry needs {n} symbols in stream {k!r}, the stream holds "
                                     f"{have} (corrupt or forged file)")

    # ------------------------------------------------------------------------------------------------ export
    #: settings ``codec export --prior`` may change (refitted at export; see :meth:`prepare_export`)
    export_options: frozenset = frozenset()
    export_options_kind = "export"

    @classmethod
    def apply_export_options(cls, config: dict, state_dict: dict, options: dict) -> tuple[dict, dict]:
        """(config, state_dict) with new export-time settings; those are then fitted by :meth:`prepare_export`."""
        if not isinstance(options, dict):
            raise CheckpointError("export settings must be a JSON object")
        if not cls.export_options:
            raise CheckpointError(f"{cls.__name__} takes no export-time settings (--prior)")
        bad = set(options) - set(cls.export_options)
        if bad:
            raise CheckpointError(f"unknown {cls.export_options_kind} settings {sorted(bad)} for {cls.__name__} (known: "
                                  f"{sorted(cls.export_options)})")
        return {**config, **options}, state_dict

    @classmethod
    def from_training(cls, args: dict, checkpoint: dict) -> "CodecModule":
        """The codec a training checkpoint describes (its constructor arguments; ``init_from`` is not repeated)."""
        return cls(**{k: v for k, v in args.items() if k != "init_from"})

    def prepare_export(self, source: dict) -> dict:
        """Fit what the decoder needs beyond the weights before the tables are frozen (e.g. a token prior counted
        on the training data), or keep ``source["tables"]`` (a shipped checkpoint's) with :meth:`set_tables`.
        ``source``: ``data`` (the data module's settings), ``training`` (the record so far), ``tables`` and
        ``options`` (``--prior`` settings). Returns entries for the training record."""
        return {}

    @classmethod
    def training_record(cls, hparams: dict, data: dict, checkpoint: dict) -> dict:
        """What the shipped manifest says about training, from the codec's and the data module's settings."""
        return {"lr": hparams.get("lr"), "batch": data.get("batch_size"),
                "data": data.get("train_dirs") or data.get("train"),
                "validation": data.get("val_dir") or data.get("val")}

    #: parameter-name parts that ``weight_bits=8`` keeps in float16 (e.g. an RVQ's codebooks, which every code
    #: of a file indexes)
    int8_skip: tuple = ()

    def _int8_names(self) -> set:
        from codec.checkpoints import int8_eligible

        return {n for n, p in self.named_parameters() if int8_eligible(n, p, self.int8_skip)}

    def round_weights(self, bits: int = 16) -> dict:
        """Round the parameters as exported checkpoints store them: float16, or with ``bits=8`` the large matrices
        and kernels as int8 codes times a float32 scale per output channel (the rest float16). Returns the codes
        ``{name: (q, scale)}`` the parameters now equal exactly."""
        from codec.checkpoints import dequantize_int8, quantize_int8

        int8 = self._int8_names() if bits == 8 else set()
        codes = {}
        with torch.no_grad():
            for n, p in self.named_parameters():
                if n in int8:
                    codes[n] = quantize_int8(p)
                    p.copy_(dequantize_int8(*codes[n]))
                else:
                    p.copy_(p.half().float())
        return codes

    def export(self, name: str = "", training: dict | None = None, freeze: bool = True,
               weight_bits: int = 16) -> dict:
        """The shipped checkpoint: parameters rounded to float16 (``weight_bits=8``: large ones as int8 codes and
        scales, format 2), then the integer CDF tables frozen from the rounded weights (so decoders use exactly what
        the encoder used), plain types only (``weights_only`` loading). ``freeze=False`` keeps the tables the model
        holds (a re-export of a shipped checkpoint whose statistics are not shipped). Afterwards the model is what loading the checkpoint gives: the statistics and
        caches the checkpoint leaves out are cleared (:meth:`_forget_unshipped`)."""
        import json

        from codec.checkpoints import FORMAT_INT8

        params = {n for n, _ in self.named_parameters()}
        codes = self.round_weights(weight_bits)
        self.eval()
        tables = self.freeze_tables() if freeze else self.tables
        shipped = self.shipped_state_dict()
        coded = {k: codes[k] for k in sorted(codes) if k in shipped}
        out = {
            "format": FORMAT_INT8 if coded else CHECKPOINT_FORMAT, "name": name, "codec": type(self).__name__,
            **({"module": type(self).__module__} if not type(self).__module__.startswith("codec.") else {}),
            "modality": self.modality, "config": self.config(),
            "state_dict": {k: (coded[k][0] if k in coded else v.half() if k in params and v.is_floating_point()
                               else v).clone().contiguous() for k, v in shipped.items()},
            **({"scales": {k: c[1].clone() for k, c in coded.items()}} if coded else {}),
            "tables": {k: t.state_dict() for k, t in tables.items()},
            "training": json.loads(json.dumps(training or {}, default=str)),
        }
        self._forget_unshipped()
        self.set_tables(tables)
        return out

    def _forget_unshipped(self) -> None:
        """Put the buffers an exported checkpoint leaves out back as a freshly built codec has them (empty cached
        CDFs, zero statistics), so this model is exactly what loading its exported checkpoint gives (same
        fingerprint: files it writes decode with the checkpoint)."""
        with torch.no_grad():
            for name, buf in list(self.named_buffers()):
                if not name.endswith(self.not_shipped):
                    continue
                if name.endswith(CDF_CACHES):
                    mod_name, _, attr = name.rpartition(".")
                    setattr(self.get_submodule(mod_name) if mod_name else self, attr, buf.new_empty(0))
                else:
                    buf.zero_()

    def num_parameters(self) -> int:
        params = {n for n, _ in self.named_parameters()}
        return int(sum(v.numel() for k, v in self.shipped_state_dict().items() if k in params))

    # ------------------------------------------------------------------------------------------------ training
    def training_parts(self) -> dict[str, nn.Module]:
        """Modules only training needs (discriminators, loss networks), built when a CodecTask starts."""
        return {}

    def configure_optimizers(self, task):
        raise NotImplementedError(f"{type(self).__name__} does not define configure_optimizers(task)")

    def training_step(self, task, batch, batch_idx):
        raise NotImplementedError(f"{type(self).__name__} does not define training_step(task, batch, batch_idx)")

    def validation_step(self, task, batch, batch_idx):
        return None

    def training_extra(self) -> dict:
        """Entries a training checkpoint records beside the clock (e.g. the pinned image model of a video codec)."""
        return {}


def group_key(name: str, group: int) -> str:
    """A payload entry's name for channel group ``group`` (group 0 keeps the codec's own names)."""
    return name if group == 0 else f"{name}.{group}"


def group_of(key: str) -> int:
    head, _, tail = key.rpartition(".")
    return int(tail) if head and tail.isdigit() else 0


def base_key(key: str) -> str:
    head, _, tail = key.rpartition(".")
    return head if head and tail.isdigit() else key


def as_batch(batch) -> torch.Tensor:
    """The input tensor of a data-module batch (a tensor, or a tuple whose first element is one)."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch

