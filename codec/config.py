"""Settings shared by tests, scripts and the CLI.

``CODEC_DATA``: where the shared media live (default: ``../shared/data`` beside the repository root). Tests and
scripts reach data only through :func:`data_root` / :func:`data_path`, which fail with a clear message when a file
is missing instead of skipping silently.
"""

from __future__ import annotations

import os
from pathlib import Path

from codec.errors import MediaError


def repo_root() -> Path:
    """The source checkout (the folder holding pyproject.toml) when running from one, else the current folder."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def data_root() -> Path:
    env = os.environ.get("CODEC_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (repo_root() / ".." / "shared" / "data").resolve()


def data_path(*parts: str) -> Path:
    """A path under the data root; raises MediaError naming the setting when it does not exist."""
    p = data_root().joinpath(*parts)
    if not p.exists():
        raise MediaError(f"data file not found: {p} (set CODEC_DATA to the folder holding the shared data; "
                         f"default ../shared/data beside the repository)")
    return p


def spec_path(spec) -> Path:
    """A data spec as a path: ``data:REL`` is under the data root (checked to exist unless it is a glob pattern),
    anything else a path as given (``~`` expanded)."""
    s = str(spec)
    if s.startswith("data:"):
        return data_root() / s[5:] if any(ch in s for ch in "*?[") else data_path(s[5:])
    return Path(s).expanduser()


def atomic_write(path, write, force: bool = False, error=None) -> Path:
    """Write a file through ``write(tmp_path)`` into a temporary file beside it, then rename it into place, so a
    failed write never leaves a half-written file nor destroys the one it replaces. An existing ``path`` is
    replaced only with ``force`` (else ``error`` (an exception class) is raised naming the file)."""
    p = Path(path)
    if p.exists() and not force:
        raise (error or FileExistsError)(f"{p} exists; pass --force (force=True) to overwrite it")
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
