"""Import CompressAI's layers and entropy models without its start-up cost.

``import compressai`` runs a package ``__init__`` that imports every sub-package: datasets (torch_geometric,
torchvision), the model zoo, the registry; ``compressai.entropy_models`` imports ``scipy.stats``. Together that is
several seconds, for a command that codes one image in a fraction of one. The codecs need only
``compressai.layers`` (GDN), ``compressai.entropy_models`` and ``compressai.models.utils``.

:func:`light_compressai` registers the ``compressai`` and ``compressai.models`` packages without running their
``__init__`` (sub-modules still import normally through the package path); the first access to anything else
(``compressai.zoo``, ``from compressai.models import ScaleHyperprior``) runs the real ``__init__`` then, so code
that uses the whole package works unchanged. ``scipy.stats`` (used by CompressAI only when building entropy-model
tables from floats) is made a lazy module (:class:`importlib.util.LazyLoader`) that loads on first use.
"""

from __future__ import annotations

import importlib.util
import sys
import types


class _DeferredPackage(types.ModuleType):
    """A package whose ``__init__`` runs on the first access to a name it does not hold yet."""

    def __getattr__(self, name):
        if name.startswith("__") or self.__dict__.get("_init_done"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        full = f"{self.__name__}.{name}"
        if full not in sys.modules and importlib.util.find_spec(full) is not None:
            return importlib.import_module(full)  # a sub-module (``from compressai import ans``): just that one
        self.__dict__["_init_done"] = True
        self.__spec__.loader.exec_module(self)
        return getattr(self, name)


def _defer_package(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return
    mod = _DeferredPackage(name)
    mod.__spec__, mod.__loader__ = spec, spec.loader
    mod.__file__, mod.__path__ = spec.origin, list(spec.submodule_search_locations)
    mod.__package__ = name
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, mod)


class _LazyModule(types.ModuleType):
    """Stands in for a module until a name is read from it; then the real module is imported and replaces it."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        real = self.__dict__.get("_real")
        if real is None:
            full = self.__name__
            parent, _, child = full.rpartition(".")
            del sys.modules[full]
            if parent and sys.modules[parent].__dict__.get(child) is self:
                delattr(sys.modules[parent], child)  # the import below sets the real module there
            real = importlib.import_module(full)
            self.__dict__["_real"] = real
            if parent:
                setattr(sys.modules[parent], child, real)
        return getattr(real, name)


def lazy_module(name: str) -> None:
    """Register ``name`` as a module that is imported on the first read of one of its names."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    mod = _LazyModule(name)
    mod.__spec__, mod.__loader__, mod.__file__ = spec, spec.loader, spec.origin
    if spec.submodule_search_locations is not None:
        mod.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, mod)


def light_compressai() -> None:
    """Make ``import compressai.layers`` / ``.entropy_models`` / ``.models.utils`` cost only those modules."""
    if "compressai" in sys.modules:
        return
    lazy_module("scipy.stats")
    _defer_package("compressai")
    _defer_package("compressai.models")
    pkg = sys.modules.get("compressai")
    if isinstance(pkg, _DeferredPackage):
        # what CompressAI's entropy models read from the package at construction (its __init__'s own definitions)
        pkg.__dict__.update(_entropy_coder="ans", available_entropy_coders=lambda: ["ans"],
                            get_entropy_coder=lambda: pkg.__dict__["_entropy_coder"])
