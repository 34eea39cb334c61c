"""A converted model as parity measures it, whatever its format: what each format's runtime module returns.

Apart from workflow/deploy/formats.py, which decides from the config what is converted: a runtime imports only
this, so editing a skip reason there reruns no conversion.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class ConvertedModel:
    """How it predicts a chunk of served inputs, its bytes on disk, its single-example latency; what its format
    records of it beside the measurements (`facts`: a .tflite file's Flex ops and tensor types); and why it
    cannot be run here, when it cannot (`not_measured`: parity then records only its size and facts)."""

    name: str
    predict: Callable[[dict[str, Any]], Any]
    bytes: int
    latency_ms: Callable[[], float]
    facts: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    not_measured: str | None = None


def bytes_on_disk(path: str, pattern: str = "*") -> int:
    """Bytes of a file, or of a folder's files matching `pattern` (the model's, not a demo page's)."""
    target = pathlib.Path(path)
    if not target.is_dir():
        return target.stat().st_size
    return sum(f.stat().st_size for f in target.rglob(pattern) if f.is_file())
