"""Judging a metric against a published target: no TensorFlow, so the report and gate start fast."""

from __future__ import annotations

import math
from typing import Any


def verdict(metrics: dict[str, Any], target: dict[str, Any] | None) -> dict[str, Any] | None:
    """pass or fail against the target, the signed margin (positive is better) and one sentence why."""
    if target is None:
        return None
    metric = target["metric"]
    value = metrics.get(metric)
    if value is None or not math.isfinite(value):
        # A diverged model (loss NaN) or a metric that could not be measured: never a pass.
        because = (
            f"{metric} is {value} (not a number), so the target of {target['value']} ({target['source']}) is not met"
        )
        return {"passed": False, "metric": metric, "value": None, "bound": None, "margin": None, "because": because}
    value = float(value)
    if target["direction"] == "higher":
        bound = target["value"] - target["tolerance"]
        margin = value - bound
        relation = "at least"
    else:
        bound = target["value"] + target["tolerance"]
        margin = bound - value
        relation = "at most"
    passed = margin >= 0
    because = (
        f"{metric} {value:.4f} is {'' if passed else 'not '}{relation} {bound:.4f} "
        f"(published {target['value']} with tolerance {target['tolerance']}, {target['source']})"
    )
    return {"passed": passed, "metric": metric, "value": value, "bound": bound, "margin": margin, "because": because}
