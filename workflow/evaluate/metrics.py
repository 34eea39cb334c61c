"""Evaluate a trained model on the test split and judge it against the paper target.

metrics.json: accuracy, error, loss, per-class accuracy, confusion matrix (rows: true class,
columns: predicted), or for a regression mse, rmse, mae and r2; and, when the experiment has a
target, the verdict with its margin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workflow.data.pipeline import make_dataset
from workflow.data.shards import read_spec
from workflow.evaluate.targets import verdict
from workflow.infra.atomic import write_json
from workflow.models.images import load_trained_model
from workflow.models.task import task_of


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
    task = task_of(spec)
    metrics = {"task": task.name, **task.test_metrics(np.concatenate(outputs), np.concatenate(labels), spec)}
    metrics["verdict"] = verdict(metrics, target)
    write_json(metrics_path, metrics)
    return metrics
