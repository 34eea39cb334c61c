"""Atomic outputs: write under a temporary name in the same folder, rename when complete.

A killed step then never leaves a file or folder under its final name that looks finished; the
temporary one is removed on failure and, if the process was killed outright, is never mistaken
for an output because its name differs.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
    """Yield a temporary sibling path to write to; rename it to `final` on success."""
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: Keras insists that a model file ends in .keras.
    temporary = final.with_name(f".{final.stem}.tmp-{os.getpid()}{final.suffix}")
    _remove(temporary)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"{final}: the step finished without writing it")
        _remove(final)
        os.replace(temporary, final)
    finally:
        _remove(temporary)


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Write `value` as indented JSON, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; the error names the file."""
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read JSON: {error}") from error


def _remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
