"""Numerical parity: the SavedModel and every converted model on the same test examples (images or rows).

A regression's entries have `test_mae` and `mae_increase` instead of accuracy and its drop, no top-1
agreement, and `max_scaled_diff`: the max abs diff over the standard deviation of the SavedModel's
predictions, which the gate judges against `max_abs_diff` budgets.

Per format, on the golden batch (the first `batch_size` examples of the test split): the largest
absolute difference of output probabilities against the SavedModel and the share of examples
with the same top-1 class; on the whole test split: accuracy next to the SavedModel's, its drop,
top-1 agreement and max abs diff; the file size and single-example latency (workflow/latency.py).
The step only measures: the deployment gate
(workflow/gate.py) judges the numbers against the budgets, so a budget change reruns the gate
alone.
"""

from __future__ import annotations

import functools
import logging
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from workflow.atomic import write_json
from workflow.convert import flex_ops_in, predict_tflite, tensor_quantization
from workflow.export import predict_saved_model
from workflow.features import count, take
from workflow.latency import saved_model_latency_ms, tflite_latency_ms
from workflow.pipeline import load_inputs
from workflow.tfjs import predict_tfjs, tfjs_latency_ms

log = logging.getLogger(__name__)
CHUNK = 1024  # examples per LiteRT / Node call, to bound memory on large test splits
NO_FLEX_RUNTIME = (
    "it needs TF Select (Flex) ops, and neither ai_edge_litert nor tf.lite.Interpreter in Python has the Flex "
    "delegate to run it (an app links tensorflow-lite-select-tf-ops); its numbers cannot be checked here"
)


def measure_parity(
    *,
    saved_model_dir: str,
    tflite_paths: list[str],
    tfjs_dir: str | None,
    node_manifest: str | None,
    shards_dir: str,
    parity_path: str,
    batch_size: int,
    skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the test split through the SavedModel and every format; write parity.json.

    `skipped`: formats the model is not converted to, with why (workflow/conversions.py), recorded as they are.
    """
    inputs, labels = load_inputs(shards_dir, "test")
    golden = min(batch_size, len(labels))
    reference = in_chunks(lambda chunk: predict_saved_model(saved_model_dir, chunk), inputs)
    example = take(inputs, 0, 1)
    # A regression's differences are judged in units of the spread of its predictions (scale-free budgets).
    scale = (float(reference.std()) or 1.0) if reference.ndim == 1 else 1.0
    predictors: dict[str, tuple[Callable[[dict[str, np.ndarray]], np.ndarray], int, Callable[[], float]]] = {
        pathlib.Path(path).stem: (
            functools.partial(predict_tflite, path),
            _size(path),
            functools.partial(tflite_latency_ms, path, example),
        )
        for path in tflite_paths
    }
    if tfjs_dir is not None and node_manifest is not None:
        predictors["tfjs"] = (
            lambda chunk: predict_tfjs(tfjs_dir, chunk, node_manifest),
            _size(tfjs_dir, pattern="*.bin") + _size(f"{tfjs_dir}/model.json"),
            lambda: tfjs_latency_ms(tfjs_dir, example, node_manifest),
        )
    report: dict[str, Any] = {
        "golden_examples": golden,
        "test_examples": int(len(labels)),
        "saved_model": {
            **{f"golden_{key}": value for key, value in quality(reference[:golden], labels[:golden]).items()},
            **{f"test_{key}": value for key, value in quality(reference, labels).items()},
            "bytes": _size(saved_model_dir),
            "latency_ms": saved_model_latency_ms(saved_model_dir, example),
        },
        "formats": {},
        "skipped": dict(skipped or {}),
    }
    for name, (predict, size, latency) in predictors.items():
        flex = [] if name == "tfjs" else flex_ops_in(next(p for p in tflite_paths if pathlib.Path(p).stem == name))
        if flex:  # converted with allow_flex: the Python LiteRT runtime has no Flex delegate to run it
            entry: dict[str, Any] = {"bytes": size, "flex_ops": flex, "not_measured": NO_FLEX_RUNTIME}
            report["formats"][name] = entry
            log.warning("%s: %s", name, entry)
            continue
        probabilities = in_chunks(predict, inputs)
        entry = {
            **compare(reference[:golden], probabilities[:golden], labels[:golden]),
            **{f"test_{key}": value for key, value in compare(reference, probabilities, labels).items()},
            "bytes": size,
            "latency_ms": latency(),
        }
        if name != "tfjs":
            entry["flex_ops"] = flex
            entry["tensors"] = tensor_quantization(next(p for p in tflite_paths if pathlib.Path(p).stem == name))
        if reference.ndim == 1:  # a regression: how much larger the mean absolute error became
            entry["mae_increase"] = entry["test_mae"] - report["saved_model"]["test_mae"]
            entry["max_scaled_diff"] = entry["max_abs_diff"] / scale
        else:
            entry["accuracy_drop"] = report["saved_model"]["test_accuracy"] - entry["test_accuracy"]
        report["formats"][name] = entry
        log.info("%s: %s", name, entry)
    write_json(parity_path, report)
    return report


def in_chunks(predict: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray]) -> np.ndarray:
    total = count(inputs)
    return np.concatenate([predict(take(inputs, start, start + CHUNK)) for start in range(0, total, CHUNK)])


def _size(path: str, pattern: str = "*") -> int:
    """Bytes of a file, or of a folder's files matching `pattern` (the model's, not a demo page's)."""
    target = pathlib.Path(path)
    if not target.is_dir():
        return target.stat().st_size
    return sum(f.stat().st_size for f in target.rglob(pattern) if f.is_file())


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose top-1 class is the label."""
    return float((probabilities.argmax(axis=1) == labels).mean())


def quality(outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy of class probabilities [n, classes], or mean absolute error of a regression's predictions [n]."""
    if outputs.ndim == 1:
        return {"mae": float(np.abs(outputs.astype(np.float64) - labels).mean())}
    return {"accuracy": accuracy(outputs, labels)}


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Max abs diff of `candidate` against the `reference` outputs and its quality (and top-1 agreement of classes)."""
    if candidate.shape != reference.shape:
        raise ValueError(f"output shape {candidate.shape} differs from the SavedModel's {reference.shape}")
    agreement = {}
    if reference.ndim > 1:
        agreement["top1_agreement"] = float((candidate.argmax(axis=1) == reference.argmax(axis=1)).mean())
    return {"max_abs_diff": float(np.abs(candidate - reference).max()), **agreement, **quality(candidate, labels)}
