"""Judging a metric against a published target: no TensorFlow, so the report and gate start fast."""

from __future__ import annotations

from typing import Any


def verdict(metrics: dict[str, Any], target: dict[str, Any] | None) -> dict[str, Any] | None:
    """pass or fail against the target, the signed margin (positive is better) and one sentence why."""
    if target is None:
        return None
    value, metric = float(metrics[target["metric"]]), target["metric"]
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
