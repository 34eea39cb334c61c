"""Gradient-boosted trees and random forests with YDF, turned into a Keras model of plain TensorFlow ops.

YDF (`ydf`, the successor of tensorflow-decision-forests) trains the forest. Its own TensorFlow
exports need custom ops (checked with ydf 0.16.1 and ydf_tf 2.21.0): `to_tensorflow_saved_model(mode="tf")`
and `to_tensorflow_function` need the `ydf_tf` package, whose SavedModel runs the forest through the
custom ops SimpleMLCreateModelResource, SimpleMLLoadModelFromPathWithHandle and
SimpleMLInferenceOpWithHandle (its inference.so): TFLiteConverter fails on it and TF.js has no such
ops; mode="keras" is deprecated and needs tensorflow-decision-forests, with the same kind of op;
`to_jax_function` + jax2tf writes an XlaCallModule op, which neither converter takes. So the trees are copied
into a `DecisionForest` Keras layer: every node of every tree in flat arrays (feature, threshold,
children, leaf value), evaluated for a batch by `max_depth` rounds of Gather / GreaterEqual /
Select, all LiteRT builtins and TF.js ops. The resulting model.keras takes the table's columns as
dict inputs like the other table models, so evaluate, export, the conversions and parity need no
special case. The train step checks that the layer reproduces YDF's own predictions.

Conditions supported: numerical `value >= threshold` (with YDF's missing-value direction), which is
what YDF grows on float32 and int64 columns. String columns are refused by name.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workflow import runtime
from workflow.atomic import atomic_path, write_json
from workflow.features import is_regression, model_inputs
from workflow.pipeline import load_inputs
from workflow.shards import read_spec

log = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-5  # |Keras layer - YDF| on the train split, relative to outputs above 1: float32 sums


@keras.saving.register_keras_serializable(package="tf_lifecycle")
class DecisionForest(keras.layers.Layer):
    """A trained forest as flat node arrays; inputs a list of [batch, 1] columns, outputs class probabilities.

    `kind` "gbt": the leaf values of all trees are summed (one output per class, or one logit for two
    classes) onto `bias`, then softmax / sigmoid. "rf": the leaf class votes are averaged.
    `task` "regression": one output, the summed (gbt) or averaged (rf) leaf values as they are.
    Leaves are their own children, so every example may take `depth` steps.
    """

    def __init__(
        self,
        kind: str,
        nodes: int,
        trees: int,
        outputs: int,
        depth: int,
        task: str = "classification",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.kind, self.nodes, self.trees, self.outputs = kind, nodes, trees, outputs
        self.depth, self.task = depth, task
        self.feature = self.add_weight(
            shape=(nodes,), dtype="int32", trainable=False, name="feature", initializer="zeros"
        )
        self.threshold = self.add_weight(shape=(nodes,), trainable=False, name="threshold", initializer="zeros")
        self.missing_positive = self.add_weight(
            shape=(nodes,), dtype="int32", trainable=False, name="missing_positive", initializer="zeros"
        )
        self.positive = self.add_weight(
            shape=(nodes,), dtype="int32", trainable=False, name="positive", initializer="zeros"
        )
        self.negative = self.add_weight(
            shape=(nodes,), dtype="int32", trainable=False, name="negative", initializer="zeros"
        )
        self.value = self.add_weight(shape=(nodes, outputs), trainable=False, name="value", initializer="zeros")
        self.roots = self.add_weight(shape=(trees,), dtype="int32", trainable=False, name="roots", initializer="zeros")
        self.bias = self.add_weight(shape=(outputs,), trainable=False, name="bias", initializer="zeros")

    def call(self, columns: list[tf.Tensor]) -> tf.Tensor:
        features = tf.concat([tf.cast(column, tf.float32) for column in columns], axis=1)  # [batch, features]
        width = tf.shape(features)[1]
        flat = tf.reshape(features, [-1])
        rows = tf.range(tf.shape(features)[0])[:, None] * width  # [batch, 1]: offsets into `flat`
        node = tf.zeros_like(rows) + self.roots[None, :]  # [batch, trees]
        for _ in range(self.depth):
            value = tf.gather(flat, rows + tf.gather(self.feature, node))
            is_missing = tf.not_equal(value, value)  # NaN; not tf.math.is_nan, which LiteRT lacks
            go_positive = tf.where(
                is_missing, tf.gather(self.missing_positive, node) > 0, value >= tf.gather(self.threshold, node)
            )
            node = tf.where(go_positive, tf.gather(self.positive, node), tf.gather(self.negative, node))
        leaves = tf.gather(self.value, node)  # [batch, trees, outputs]
        if self.kind == "rf":
            return tf.reduce_mean(leaves, axis=1)
        logits = tf.reduce_sum(leaves, axis=1) + self.bias
        if self.task == "regression":
            return logits
        if self.outputs == 1:
            positive = tf.sigmoid(logits)
            return tf.concat([1.0 - positive, positive], axis=1)
        return tf.nn.softmax(logits, axis=1)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "kind": self.kind,
            "nodes": self.nodes,
            "trees": self.trees,
            "outputs": self.outputs,
            "depth": self.depth,
            "task": self.task,
        }


def forest_arrays(model: Any, feature_index: dict[str, int], classes: int | None) -> dict[str, Any]:
    """Every node of a YDF forest in flat arrays, in the layout DecisionForest takes.

    Class outputs follow the label's integer order, not YDF's (string-sorted) class order.
    `classes` None: a regression forest (one output).
    """
    import ydf

    kind = "gbt" if isinstance(model, ydf.GradientBoostedTreesModel) else "rf"
    regression = classes is None
    order = [0] if regression else [int(name) for name in model.label_classes()]  # YDF class position -> label id
    column_names = [column.name for column in model.data_spec().columns]
    per_iteration = model.num_trees_per_iteration() if kind == "gbt" else 1
    outputs = int(per_iteration if kind == "gbt" or classes is None else classes)
    arrays: dict[str, list[Any]] = {
        key: [] for key in ("feature", "threshold", "missing", "positive", "negative", "value")
    }
    roots, depth = [], 0

    def add(node: Any, tree: int, level: int) -> int:
        nonlocal depth
        index = len(arrays["feature"])
        for key in arrays:
            arrays[key].append(None)
        if node.is_leaf:
            depth = max(depth, level)
            arrays["feature"][index], arrays["threshold"][index], arrays["missing"][index] = 0, np.inf, 0
            arrays["positive"][index] = arrays["negative"][index] = index
            arrays["value"][index] = leaf_value(node.value, kind, tree % per_iteration, outputs, order, regression)
            return index
        condition = node.condition
        if type(condition).__name__ != "NumericalHigherThanCondition":
            raise ValueError(
                f"a {type(condition).__name__} on column {column_names[condition.attribute]!r}: only numerical "
                "conditions are exported; give decision forests float32 or int64 columns"
            )
        arrays["feature"][index] = feature_index[column_names[condition.attribute]]
        arrays["threshold"][index] = condition.threshold
        arrays["missing"][index] = int(condition.missing)
        arrays["value"][index] = [0.0] * outputs
        arrays["positive"][index] = add(node.pos_child, tree, level + 1)
        arrays["negative"][index] = add(node.neg_child, tree, level + 1)
        return index

    for tree_index, tree in enumerate(model.iter_trees()):
        roots.append(add(tree.root, tree_index, 0))
    bias = np.asarray(model.initial_predictions(), np.float32).reshape(-1) if kind == "gbt" else np.zeros(outputs)
    values = np.asarray(arrays["value"], np.float32)
    if kind == "gbt" and outputs > 1:
        bias = bias[np.argsort(order)]
    if kind == "gbt" and not regression and outputs == 1 and order[1] != 1:  # YDF's logit is for label 0: flip it
        bias, values = -bias, -values
    return {
        "kind": kind,
        "task": "regression" if regression else "classification",
        "outputs": outputs,
        "depth": depth,
        "roots": np.asarray(roots, np.int32),
        "feature": np.asarray(arrays["feature"], np.int32),
        "threshold": np.asarray(arrays["threshold"], np.float32),
        "missing_positive": np.asarray(arrays["missing"], np.int32),
        "positive": np.asarray(arrays["positive"], np.int32),
        "negative": np.asarray(arrays["negative"], np.int32),
        "value": values,
        "bias": np.asarray(bias, np.float32),
    }


def leaf_value(
    value: Any, kind: str, tree_output: int, outputs: int, order: list[int], regression: bool = False
) -> list[float]:
    """A leaf's contribution: a GBT leaf adds its value to its tree's output; an RF leaf votes for its top
    class (or gives its value, in a regression)."""
    result = [0.0] * outputs
    if regression:
        return [float(value.value)]
    if kind == "gbt":
        output = tree_output if outputs == 1 else order[tree_output]
        result[output] = float(value.value)
        return result
    # YDF random forests vote (winner_take_all, its default): each tree gives its leaf's top class.
    result[order[int(np.argmax(value.probability))]] = 1.0
    return result


def build_forest_model(arrays: dict[str, Any], columns: dict[str, dict[str, str]]) -> keras.Model:
    """A Keras model taking the table's columns ({name: [batch, 1]}) and giving class probabilities
    (or, for a regression forest, its prediction [batch, 1])."""
    names = sorted(columns)
    inputs = {name: keras.Input(shape=(1,), dtype=columns[name]["dtype"], name=name) for name in names}
    forest = DecisionForest(
        arrays["kind"],
        nodes=len(arrays["feature"]),
        trees=len(arrays["roots"]),
        outputs=arrays["outputs"],
        depth=max(arrays["depth"], 1),
        task=arrays["task"],
        name="forest",
    )
    probabilities = forest([inputs[name] for name in names])
    for key in ("feature", "threshold", "missing_positive", "positive", "negative", "value", "roots", "bias"):
        getattr(forest, key).assign(arrays[key])
    return keras.Model(inputs, probabilities, name="gbt" if arrays["kind"] == "gbt" else "random_forest")


def train_forest(
    *, shards_dir: str, model_path: str, history_path: str, info_path: str, params: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Train the configured YDF forest on the train split (validation split for early stopping), save
    it as a DecisionForest Keras model, and check it reproduces YDF's predictions."""
    import ydf

    options, train_settings = params["model"], params["train"]
    if train_settings["workers"] > 1:
        raise ValueError("train.workers: decision forests train in one process (YDF); set workers: 1")
    spec = read_spec(shards_dir)
    columns = spec["features"]["columns"]
    strings = sorted(name for name, column in columns.items() if column["dtype"] == "string")
    if strings:
        raise ValueError(
            f"model.name {options['name']}: string columns {', '.join(strings)} cannot be exported as numerical "
            "trees; use a table model (linear, wide_and_deep) or encode them as integers in the data"
        )
    classes = None if is_regression(spec) else spec["features"]["label"]["num_classes"]
    task = ydf.Task.REGRESSION if classes is None else ydf.Task.CLASSIFICATION
    names = sorted(columns)
    started = time.monotonic()
    train_inputs, train_labels = load_inputs(shards_dir, "train")
    data = {**{name: train_inputs[name] for name in names}, "label": train_labels}
    common = {"label": "label", "task": task, "random_seed": seed, "max_depth": options["max_depth"]}
    if options["name"] == "gradient_boosted_trees":
        learner = ydf.GradientBoostedTreesLearner(
            **common, num_trees=options["num_trees"], shrinkage=options["shrinkage"]
        )
    else:
        votes = {} if classes is None else {"winner_take_all": True}
        learner = ydf.RandomForestLearner(**common, num_trees=options["num_trees"], **votes)
    validation = None
    if "validation" in spec["splits"] and options["name"] == "gradient_boosted_trees":
        valid_inputs, valid_labels = load_inputs(shards_dir, "validation")
        validation = {**{name: valid_inputs[name] for name in names}, "label": valid_labels}
    forest = learner.train(data, valid=validation, verbose=0)
    seconds = time.monotonic() - started
    arrays = forest_arrays(forest, {name: index for index, name in enumerate(names)}, classes)
    model = build_forest_model(arrays, columns)
    expected = ydf_outputs(forest, {name: train_inputs[name] for name in names}, classes)
    actual = np.asarray(model(model_inputs(spec, train_inputs), training=False))
    max_diff = float(np.abs(actual - expected).max())
    allowed = PARITY_TOLERANCE * max(1.0, float(np.abs(expected).max()))  # relative for large regression values
    if max_diff > allowed:
        raise RuntimeError(f"the exported forest differs from YDF's predictions by {max_diff:.3g} > {allowed:.3g}")
    log.info(
        "%s: %d trees, %d nodes, depth %d, trained in %.1f s; matches YDF within %.2g",
        options["name"], len(arrays["roots"]), len(arrays["feature"]), arrays["depth"], seconds, max_diff,
    )  # fmt: skip
    logs = forest.training_logs() if hasattr(forest, "training_logs") else []
    history = {"seconds": [round(seconds, 3)]}
    losses = [entry.evaluation.loss for entry in logs if entry.evaluation and entry.evaluation.loss is not None]
    if losses:
        history["val_loss"] = [float(value) for value in losses]
    info = {
        "params": params,
        "seed": seed,
        "data": spec["source"],
        "versions": {**runtime.versions(), "ydf": ydf.__version__},
        "code": runtime.git_commit(),
        "host": runtime.host(),
        "strategy": "ydf (one process)",
        "replicas": 1,
        "trees": len(arrays["roots"]),
        "nodes": len(arrays["feature"]),
        "depth": arrays["depth"],
        "max_abs_diff_vs_ydf": max_diff,
        "wall_seconds": round(seconds, 3),
        "examples_per_second": round(len(train_labels) / max(seconds, 1e-9), 1),
        "attempts": 1,
        "resumed_from": None,
    }
    with atomic_path(model_path) as temporary:
        model.save(temporary)
    write_json(history_path, history)
    write_json(info_path, info)
    return info


def ydf_outputs(forest: Any, inputs: dict[str, np.ndarray], classes: int | None) -> np.ndarray:
    """YDF's own class probabilities, columns in label order (or, `classes` None, its predictions [n, 1])."""
    predicted = np.asarray(forest.predict(inputs), np.float32)
    if classes is None:
        return predicted.reshape(-1, 1)
    if predicted.ndim == 1:  # two classes: the probability of label_classes()[1]
        positive = predicted if forest.label_classes()[1] == "1" else 1.0 - predicted
        return np.stack([1.0 - positive, positive], axis=1)
    order = [int(name) for name in forest.label_classes()]
    result = np.zeros((len(predicted), classes), np.float32)
    result[:, order] = predicted
    return result
