"""Small checks on config and JSON values shared by the config loader, the report and the comparisons."""

from __future__ import annotations

from typing import Any


def is_number(value: Any) -> bool:
    """An int or a float, not a bool (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
