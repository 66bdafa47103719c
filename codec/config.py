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
