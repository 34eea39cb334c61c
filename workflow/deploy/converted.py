"""A converted model as parity measures it, whatever its format: what each format's runtime module returns.

Apart from workflow/deploy/formats.py, which decides from the config what is converted: a runtime imports only
this, so editing a skip reason there reruns no conversion.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class ConvertedModel:
    """How it predicts a chunk of served inputs, its bytes on disk, its single-example latency, and for a
    .tflite file its path (for its Flex ops and tensor types)."""

    name: str
    predict: Callable[[dict[str, Any]], Any]
    bytes: int
    latency_ms: Callable[[], float]
    tflite_path: str | None = None


def bytes_on_disk(path: str, pattern: str = "*") -> int:
    """Bytes of a file, or of a folder's files matching `pattern` (the model's, not a demo page's)."""
    target = pathlib.Path(path)
    if not target.is_dir():
        return target.stat().st_size
    return sum(f.stat().st_size for f in target.rglob(pattern) if f.is_file())
