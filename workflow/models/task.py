"""What a model is trained to do, and everything that follows from it.

A Task owns the training loss and metrics, the test metrics and the measure a run is summarized by,
the SavedModel's outputs, and how a converted model's outputs are compared with the SavedModel's
(parity's quality figure and its change, the unit of a difference). The data says
which task it is (spec.json's label: `task: regression`, or class counts). The rest of the package
asks the Task instead of testing for regression itself; a new task is one subclass here, plus its
columns in workflow/evaluate/report.py (keyed by `Task.name`).

Keras and TensorFlow are imported inside the methods that need them: the report and the gate read
the tasks' names and measures without starting TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workflow.data.shards import Spec


class Task:
    """The interface; `CLASSIFICATION` and `REGRESSION` below are the tasks there are."""

    name: str
    summary_metric: str  # the test metric a run is summarized by when no target names one
    summary_higher_is_better: bool  # which of two runs' summary_metric is the better one
    served_outputs: dict[str, str]  # the SavedModel signature's outputs and their dtypes
    parity_judged: str  # what the gate judges, in words for the report

    def classes(self, spec: Spec) -> int | None:
        """The number of classes the model outputs, or None for one value per example."""
        raise NotImplementedError

    def loss_and_metrics(self) -> tuple[Any, list[Any]]:
        """The Keras loss and metrics the model is compiled with."""
        raise NotImplementedError

    def test_metrics(self, outputs: np.ndarray, labels: np.ndarray, spec: Spec) -> dict[str, Any]:
        """metrics.json's figures from the Keras model's outputs on the test split."""
        raise NotImplementedError

    def serve(self, outputs: Any) -> dict[str, Any]:
        """The serving signature's outputs (tensors) from the Keras model's outputs."""
        raise NotImplementedError

    def prediction(self, outputs: np.ndarray) -> np.ndarray:
        """The Keras model's outputs as the SavedModel's main output holds them."""
        return outputs

    def quality(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """The parity quality figure of main outputs against the labels."""
        raise NotImplementedError

    def agreement(self, reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
        """How often a converted model decides as the SavedModel does (none for a regression)."""
        return {}

    def change(self, entry: dict[str, Any], saved_model: dict[str, Any], reference: np.ndarray) -> dict[str, float]:
        """A converted model's quality against the SavedModel's, and its difference in the unit the gate judges."""
        raise NotImplementedError


class Classification(Task):
    name = "classification"
    summary_metric = "accuracy"
    summary_higher_is_better = True
    served_outputs = {"probabilities": "float32", "class_id": "int32"}
    parity_judged = "max abs diff and top-1 agreement on the golden batch, the accuracy drop on the whole test split"

    def classes(self, spec: Spec) -> int | None:
        return spec.label.classes

    def loss_and_metrics(self) -> tuple[Any, list[Any]]:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(), [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def test_metrics(self, outputs: np.ndarray, labels: np.ndarray, spec: Spec) -> dict[str, Any]:
        return classification_metrics(outputs, labels, spec.label.classes)

    def serve(self, outputs: Any) -> dict[str, Any]:
        import tensorflow as tf

        return {"probabilities": outputs, "class_id": tf.argmax(outputs, axis=-1, output_type=tf.int32)}

    def quality(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return {"accuracy": float((outputs.argmax(axis=1) == labels).mean())}

    def agreement(self, reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
        return {"top1_agreement": float((candidate.argmax(axis=1) == reference.argmax(axis=1)).mean())}

    def change(self, entry: dict[str, Any], saved_model: dict[str, Any], reference: np.ndarray) -> dict[str, float]:
        return {"accuracy_drop": saved_model["test_accuracy"] - entry["test_accuracy"]}


class Regression(Task):
    name = "regression"
    summary_metric = "rmse"
    summary_higher_is_better = False
    served_outputs = {"prediction": "float32"}
    parity_judged = "max abs diff over the standard deviation of the SavedModel's predictions on the golden batch"

    def classes(self, spec: Spec) -> int | None:
        return None

    def loss_and_metrics(self) -> tuple[Any, list[Any]]:
        import keras

        return keras.losses.MeanSquaredError(), [keras.metrics.MeanAbsoluteError(name="mae")]

    def test_metrics(self, outputs: np.ndarray, labels: np.ndarray, spec: Spec) -> dict[str, Any]:
        return regression_metrics(outputs[:, 0], labels)

    def serve(self, outputs: Any) -> dict[str, Any]:
        return {"prediction": outputs[:, 0]}

    def prediction(self, outputs: np.ndarray) -> np.ndarray:
        return outputs[:, 0]

    def quality(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return {"mae": float(np.abs(outputs.astype(np.float64) - labels).mean())}

    def change(self, entry: dict[str, Any], saved_model: dict[str, Any], reference: np.ndarray) -> dict[str, float]:
        # In units of the spread of the SavedModel's predictions: budgets that do not depend on the label's scale.
        return {
            "mae_increase": entry["test_mae"] - saved_model["test_mae"],
            "max_scaled_diff": entry["max_abs_diff"] / (float(reference.std()) or 1.0),
        }


CLASSIFICATION, REGRESSION = Classification(), Regression()
TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION, REGRESSION)}


def task_of(spec: Spec) -> Task:
    """The task of the data in spec.json: its label's `task`, classification unless it says regression."""
    return TASKS[spec.label.task]


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
