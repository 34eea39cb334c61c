"""A helper of the example that no step runs (it draws a few raw images for a person to look at).

Editing it reruns nothing: tests/test_usercode.py checks that with a dry run.
"""

from __future__ import annotations

import numpy as np


def as_text(image: np.ndarray) -> str:
    return "\n".join("".join("#" if value > 127 else "." for value in row) for row in image)
