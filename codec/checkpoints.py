"""The checkpoint registry: ``checkpoints/manifest.json`` lists every shipped model (name, codec class, config,
file, sha256, parameter count, training data and duration, measured RD points)."""

from __future__ import annotations

import json
from pathlib import Path

from codec.config import repo_root
from codec.errors import CheckpointError


def checkpoints_dir() -> Path:
    return repo_root() / "checkpoints"


def load_manifest() -> dict:
    p = checkpoints_dir() / "manifest.json"
    if not p.exists():
        raise CheckpointError(f"no checkpoint manifest at {p}")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(m, dict) or not isinstance(m.get("models", []), list):
        raise CheckpointError(f"{p} must be an object with a 'models' list")
    return m
