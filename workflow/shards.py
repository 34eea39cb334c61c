"""Reading a shards folder: spec.json and sha256-checked shard paths (no TensorFlow imported).

The tfrecord step writes the folder (workflow/tfrecord.py); the pipeline, evaluate, manifest and
train read it through here, so steps that only need spec.json start without TensorFlow.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

from workflow.atomic import read_json

SPEC_NAME = "spec.json"


class ShardError(ValueError):
    """A shard that is missing, truncated or altered since spec.json was written."""


def sha256_file(path: str | pathlib.Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | pathlib.Path) -> str:
    """sha256 of a file, or of a folder: its files' relative paths and contents, in sorted order."""
    root = pathlib.Path(path)
    if not root.is_dir():
        return sha256_file(root)
    digest = hashlib.sha256()
    for file in sorted(item for item in root.rglob("*") if item.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def read_spec(shards_dir: str | pathlib.Path) -> dict[str, Any]:
    """spec.json of a shards folder."""
    return read_json(pathlib.Path(shards_dir) / SPEC_NAME)


def shard_paths(shards_dir: str | pathlib.Path, spec: dict[str, Any], split: str, verify: bool = True) -> list[str]:
    """Paths of a split's shards; with `verify`, each shard's sha256 must match spec.json."""
    paths = []
    for entry in spec["splits"][split]["shards"]:
        path = pathlib.Path(shards_dir) / entry["file"]
        if not path.is_file():
            raise ShardError(f"{path}: shard listed in {SPEC_NAME} is missing")
        if verify and sha256_file(path) != entry["sha256"]:
            raise ShardError(
                f"{path}: sha256 differs from {SPEC_NAME} (the shard is truncated or altered); "
                f"rerun the tfrecord step (delete the shards folder)"
            )
        paths.append(str(path))
    return paths
