"""Evaluate a trained model on the test split and judge it against the paper target.

metrics.json: accuracy, error, loss, per-class accuracy, confusion matrix (rows: true class,
columns: predicted), or for a regression mse, rmse, mae and r2; and, when the experiment has a
target, the verdict with its margin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workflow.atomic import write_json
from workflow.features import is_regression
from workflow.models import load_trained_model
from workflow.pipeline import make_dataset
from workflow.shards import read_spec
from workflow.targets import verdict


def evaluate(
    *, model_path: str, shards_dir: str, metrics_path: str, batch_size: int, target: dict[str, Any] | None
) -> dict[str, Any]:
    """Compute test metrics of `model_path` and write metrics.json."""
    model = load_trained_model(model_path)
    spec = read_spec(shards_dir)
    outputs, labels = [], []
    for inputs, batch_labels in make_dataset(shards_dir, "test", batch_size):
        outputs.append(np.asarray(model(inputs, training=False)))
        labels.append(batch_labels.numpy())
    if is_regression(spec):
        metrics = regression_metrics(np.concatenate(outputs)[:, 0], np.concatenate(labels))
    else:
        metrics = classification_metrics(
            np.concatenate(outputs), np.concatenate(labels), spec["features"]["label"]["num_classes"]
        )
    metrics["verdict"] = verdict(metrics, target)
    write_json(metrics_path, metrics)
    return metrics


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Mean squared error (also as `loss`, the training loss), its root, mean absolute error and R^2."""
    errors = predictions.astype(np.float64) - targets
    mse = float(np.mean(errors**2))
    spread = float(np.sum((targets - targets.mean()) ** 2))
    return {
        "examples": int(len(targets)),
        "mse": mse,
        "rmse": mse**0.5,
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / spread if spread > 0 else 0.0,
        "loss": mse,
    }


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, error, mean cross-entropy, per-class accuracy and the confusion matrix."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class_total = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), per_class_total, out=np.zeros(num_classes), where=per_class_total > 0)
    picked = probabilities[np.arange(len(labels)), labels]
    accuracy = float((predicted == labels).mean())
    return {
        "examples": int(len(labels)),
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "per_class_accuracy": [float(value) for value in per_class],
        "confusion_matrix": confusion.tolist(),
    }
