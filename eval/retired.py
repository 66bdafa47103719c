"""Record every checkpoint that was shipped once and is no longer (replaced weights or a removed model) in the
manifest's ``"retired"`` list, from the git history of ``checkpoints/``, so that decoding a file made with one names
the commit to fetch it from (:func:`codec.checkpoints.retired_hint`).

    python -m codec.eval.retired [--dry-run]

Each version of each ``checkpoints/*.pt`` in ``git log`` is loaded with the current loader and fingerprinted the way
bitstream headers carry it; a fingerprint that no shipped model has now becomes one record: name, fingerprint, the
newest commit that holds it, and the file's path there. Versions the current loader cannot read (formats from before
the golden files) are listed as skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from codec.config import repo_root


def _git(*args: str, binary: bool = False):
    r = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, check=True)
    return r.stdout if binary else r.stdout.decode()


def history() -> list[tuple[str, str]]:
    """(commit, path) of every version of a shipped checkpoint file, newest first per path."""
    paths = sorted({p for p in _git("log", "--format=", "--name-only", "--", "checkpoints/*.pt").split() if p})
    out = []
    for p in paths:
        for c in _git("log", "--format=%h", "--", p).split():
            out.append((c, p))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the records, do not write the manifest")
    args = ap.parse_args(argv)
    from codec.checkpoints import checkpoints_dir, load_checkpoint_file, load_manifest, write_manifest
    from codec.errors import CodecError

    manifest = load_manifest()
    current = {load_checkpoint_file(checkpoints_dir() / e["file"], name=e["name"]).fingerprint().hex()
               for e in manifest["models"]}
    records: dict[str, dict] = {}
    skipped = []
    with tempfile.TemporaryDirectory() as tmp:
        for commit, path in history():
            try:
                data = _git("show", f"{commit}:{path}", binary=True)
            except subprocess.CalledProcessError:  # the commit removed the file
                continue
            f = Path(tmp) / Path(path).name
            f.write_bytes(data)
            try:
                fp = load_checkpoint_file(f).fingerprint().hex()
            except (CodecError, RuntimeError, KeyError, TypeError, ValueError) as e:
                skipped.append(f"{commit}:{path} ({str(e).splitlines()[0][:120]})")
                continue
            if fp not in current and fp not in records:  # newest first: the first commit seen is the newest
                records[fp] = {"name": Path(path).stem, "fingerprint": fp, "commit": commit, "file": path}
    retired = sorted(records.values(), key=lambda r: (r["name"], r["commit"]))
    for r in retired:
        print(f"{r['name']:36s} {r['commit']}  {r['fingerprint']}")
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    if not args.dry_run:
        manifest["retired"] = retired
        write_manifest(manifest)
        print(f"{len(retired)} retired checkpoints recorded in {checkpoints_dir() / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
