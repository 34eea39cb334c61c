"""Atomic outputs: write under a temporary name in the same folder, rename when complete.

A killed step then never leaves a file or folder under its final name that looks finished; the
temporary one is removed on failure and, if the process was killed outright, is never mistaken
for an output because its name differs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import json
import logging
import math
import os
import pathlib
import shutil
import signal
from collections.abc import Iterator
from typing import Any

# Fault injection for tests/test_faults.py: a process writing an output whose path matches this
# glob kills itself (SIGKILL) after the temporary is complete and before the rename, the worst
# moment for a step to die.
KILL_BEFORE_RENAME = "TF_LIFECYCLE_KILL_BEFORE_RENAME"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
    """Yield a temporary sibling path to write to; rename it to `final` on success."""
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: Keras insists that a model file ends in .keras.
    prefix = f".{final.stem}.tmp-"
    # Leftovers of a killed earlier attempt (another pid): Snakemake's lock means no one else writes here.
    for stale in final.parent.glob(f"{glob.escape(prefix)}*{glob.escape(final.suffix)}"):
        _remove(stale)
    temporary = final.with_name(f"{prefix}{os.getpid()}{final.suffix}")
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"{final}: the step finished without writing it")
        pattern = os.environ.get(KILL_BEFORE_RENAME)
        if pattern and fnmatch.fnmatch(str(final), pattern):
            os.kill(os.getpid(), signal.SIGKILL)
        _remove(final)
        os.replace(temporary, final)
    finally:
        _remove(temporary)


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Write `value` as indented JSON, atomically; NaN and infinity become null (with a warning naming them).

    Python's json writes NaN and Infinity, which are not JSON: other parsers (jq, browsers, JSON
    Schema tools) reject the whole file. null is what JavaScript's JSON.stringify writes for them,
    and every reader here treats a null measurement as failing (workflow/deploy/gate.py, workflow/evaluate/targets.py).
    """
    replaced: list[str] = []
    text = json.dumps(_finite(value, "", replaced), indent=2, sort_keys=False, allow_nan=False)
    if replaced:
        logging.getLogger(__name__).warning("%s: not finite, written as null: %s", path, ", ".join(replaced[:20]))
    with atomic_path(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")


def _finite(value: Any, where: str, replaced: list[str]) -> Any:
    """`value` with every NaN or infinite float replaced by None; their key paths appended to `replaced`."""
    if isinstance(value, float) and not math.isfinite(value):
        replaced.append(f"{where or 'value'}={value}")
        return None
    if isinstance(value, dict):
        return {key: _finite(item, f"{where}.{key}" if where else str(key), replaced) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item, f"{where}[{index}]", replaced) for index, item in enumerate(value)]
    return value


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
