"""Evaluation arithmetic: metrics from probabilities, and the verdict against a paper target."""

from __future__ import annotations

import numpy as np
import pytest

from workflow.evaluate.targets import verdict
from workflow.models.task import classification_metrics


def test_metrics_from_known_predictions():
    """Three of four right: accuracy 0.75, the confusion matrix and per-class accuracy follow."""
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 1, 1, 2])

    metrics = classification_metrics(probabilities, labels, 3)

    assert metrics["accuracy"] == 0.75
    assert metrics["error"] == 0.25
    assert metrics["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert metrics["per_class_accuracy"] == [1.0, 0.5, 1.0]
    expected_loss = -np.mean(np.log([0.9, 0.7, 0.3, 0.8]))
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-6)


@pytest.mark.parametrize(
    ("metric", "value", "target", "passed", "margin"),
    [
        ("error", 0.0090, {"value": 0.0095, "tolerance": 0.0, "direction": "lower"}, True, 0.0005),
        ("error", 0.0100, {"value": 0.0095, "tolerance": 0.0, "direction": "lower"}, False, -0.0005),
        ("error", 0.0100, {"value": 0.0095, "tolerance": 0.001, "direction": "lower"}, True, 0.0005),
        ("accuracy", 0.9922, {"value": 0.9922, "tolerance": 0.0, "direction": "higher"}, True, 0.0),
        ("accuracy", 0.9900, {"value": 0.9922, "tolerance": 0.001, "direction": "higher"}, False, -0.0012),
    ],
)
def test_verdict_and_margin(metric, value, target, passed, margin):
    """pass when the metric is on the right side of value +/- tolerance; the margin is signed."""
    metrics = {"accuracy": 1 - value, "error": value, "loss": 0.0} if metric == "error" else {metric: value}

    result = verdict(metrics, {"metric": metric, "source": "a paper, table 1", **target})

    assert result["passed"] is passed
    assert result["margin"] == pytest.approx(margin, abs=1e-9)
    assert ("is not" in result["because"]) is (not passed)
    assert "a paper, table 1" in result["because"]


def test_no_target_no_verdict():
    """Without a target there is nothing to judge."""
    assert verdict({"accuracy": 0.5}, None) is None


def test_regression_metrics_are_the_textbook_ones():
    """MSE (also the loss), its root, MAE and R^2 of predictions against targets."""
    from workflow.models.task import regression_metrics

    metrics = regression_metrics(np.array([1.0, 2.0, 5.0], np.float32), np.array([1.0, 3.0, 3.0], np.float32))

    assert metrics["examples"] == 3 and metrics["mse"] == pytest.approx(5 / 3) and metrics["loss"] == metrics["mse"]
    assert metrics["rmse"] == pytest.approx((5 / 3) ** 0.5) and metrics["mae"] == pytest.approx(1.0)
    assert metrics["r2"] == pytest.approx(1 - 5 / (4 / 9 + 4 / 9 + 16 / 9))  # targets' mean is 7/3
