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

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workflow.data.features import model_inputs
from workflow.data.pipeline import load_inputs
from workflow.data.shards import Spec
from workflow.models.task import REGRESSION, task_of

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

    def leaf(node: Any, tree: int) -> list[float]:
        return leaf_value(node.value, kind, tree % per_iteration, outputs, order, regression)

    def feature(condition: Any) -> int:
        if type(condition).__name__ != "NumericalHigherThanCondition":
            raise ValueError(
                f"a {type(condition).__name__} on column {column_names[condition.attribute]!r}: only numerical "
                "conditions are exported; give decision forests float32 or int64 columns"
            )
        return feature_index[column_names[condition.attribute]]

    trees = FlatTrees(leaf, feature, outputs)
    for tree_index, tree in enumerate(model.iter_trees()):
        trees.roots.append(trees.add(tree.root, tree_index, 0))
    bias = np.asarray(model.initial_predictions(), np.float32).reshape(-1) if kind == "gbt" else np.zeros(outputs)
    values = np.asarray(trees.nodes["value"], np.float32)
    if kind == "gbt" and outputs > 1:
        bias = bias[np.argsort(order)]
    if kind == "gbt" and not regression and outputs == 1 and order[1] != 1:  # YDF's logit is for label 0: flip it
        bias, values = -bias, -values
    integers = {key: np.asarray(trees.nodes[key], np.int32) for key in ("feature", "positive", "negative")}
    return {
        "kind": kind,
        "task": "regression" if regression else "classification",
        "outputs": outputs,
        "depth": trees.depth,
        "roots": np.asarray(trees.roots, np.int32),
        **integers,
        "threshold": np.asarray(trees.nodes["threshold"], np.float32),
        "missing_positive": np.asarray(trees.nodes["missing"], np.int32),
        "value": values,
        "bias": np.asarray(bias, np.float32),
    }


class FlatTrees:
    """The nodes of a forest's trees appended depth first to flat per-field lists; a leaf is its own
    children, so every example may take `depth` steps. `leaf(node, tree)` gives a leaf's output
    values, `feature(condition)` the input column a split tests."""

    def __init__(self, leaf: Callable[[Any, int], list[float]], feature: Callable[[Any], int], outputs: int):
        self.leaf, self.feature, self.outputs = leaf, feature, outputs
        self.nodes: dict[str, list[Any]] = {
            key: [] for key in ("feature", "threshold", "missing", "positive", "negative", "value")
        }
        self.roots: list[int] = []
        self.depth = 0

    def add(self, node: Any, tree: int, level: int) -> int:
        """Append `node` and, below it, its subtree; its index."""
        nodes, index = self.nodes, len(self.nodes["feature"])
        for values in nodes.values():
            values.append(None)
        if node.is_leaf:
            self.depth = max(self.depth, level)
            nodes["feature"][index], nodes["threshold"][index], nodes["missing"][index] = 0, np.inf, 0
            nodes["positive"][index] = nodes["negative"][index] = index
            nodes["value"][index] = self.leaf(node, tree)
            return index
        condition = node.condition
        nodes["feature"][index] = self.feature(condition)
        nodes["threshold"][index] = condition.threshold
        nodes["missing"][index] = int(condition.missing)
        nodes["value"][index] = [0.0] * self.outputs
        nodes["positive"][index] = self.add(node.pos_child, tree, level + 1)
        nodes["negative"][index] = self.add(node.neg_child, tree, level + 1)
        return index


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


def build_forest_model(arrays: dict[str, Any], columns: Mapping[str, Mapping[str, str]]) -> keras.Model:
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


@dataclasses.dataclass(frozen=True)
class FittedForest:
    """What the forest builder returns to the trainer, which saves it as it saves every model."""

    model: keras.Model  # the trees as plain TensorFlow ops (DecisionForest), checked against YDF
    history: dict[str, list[float]]  # the validation loss per iteration, where YDF logged one
    seconds: float
    info: dict[str, Any]  # for train.json: trees, nodes, depth, the difference from YDF, speed
    versions: dict[str, str]  # what trained it besides TensorFlow (ydf), for train.json's versions


def fit_forest_model(
    options: dict[str, Any], train_settings: dict[str, Any], shards_dir: str, spec: Spec, seed: int
) -> FittedForest:
    """Train the configured YDF forest on the train split (validation split for early stopping), turn it
    into a DecisionForest Keras model, and check that the model reproduces YDF's predictions."""
    import ydf

    check_forest_fits(options, train_settings, spec)
    classes = task_of(spec).classes(spec)
    names = sorted(spec.columns)
    started = time.monotonic()
    train_inputs, train_labels = load_inputs(shards_dir, "train")
    forest = fit_forest(options, shards_dir, spec, seed, {**pick(train_inputs, names), "label": train_labels})
    seconds = time.monotonic() - started
    arrays = forest_arrays(forest, {name: index for index, name in enumerate(names)}, classes)
    model = build_forest_model(arrays, spec.columns)
    max_diff = check_matches_ydf(forest, model, spec, train_inputs, classes)
    log.info(
        "%s: %d trees, %d nodes, depth %d, trained in %.1f s; matches YDF within %.2g",
        options["name"], len(arrays["roots"]), len(arrays["feature"]), arrays["depth"], seconds, max_diff,
    )  # fmt: skip
    info = {
        "trees": len(arrays["roots"]),
        "nodes": len(arrays["feature"]),
        "depth": arrays["depth"],
        "max_abs_diff_vs_ydf": max_diff,
        "examples_per_second": round(len(train_labels) / max(seconds, 1e-9), 1),
    }
    return FittedForest(model, forest_history(forest), seconds, info, {"ydf": ydf.__version__})


def check_forest_fits(options: dict[str, Any], train_settings: dict[str, Any], spec: Spec) -> None:
    """One process, and no string columns (the exported trees compare numbers); say which key or columns."""
    if train_settings["workers"] > 1:
        raise ValueError("train.workers: decision forests train in one process (YDF); set workers: 1")
    columns = spec.columns
    strings = sorted(name for name, column in columns.items() if column["dtype"] == "string")
    if strings:
        raise ValueError(
            f"model.name {options['name']}: string columns {', '.join(strings)} cannot be exported as numerical "
            "trees; use a table model (linear, wide_and_deep) or encode them as integers in the data"
        )


def pick(inputs: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    return {name: inputs[name] for name in names}


def fit_forest(options: dict[str, Any], shards_dir: str, spec: Spec, seed: int, data: dict[str, Any]) -> Any:
    """YDF's learner for `model.name`, trained on `data` (columns and "label"); a boosted forest stops
    early on the validation split, if there is one."""
    import ydf

    regression = task_of(spec) is REGRESSION
    task = ydf.Task.REGRESSION if regression else ydf.Task.CLASSIFICATION
    common = {"label": "label", "task": task, "random_seed": seed, "max_depth": options["max_depth"]}
    boosted = options["name"] == "gradient_boosted_trees"
    if boosted:
        learner = ydf.GradientBoostedTreesLearner(
            **common, num_trees=options["num_trees"], shrinkage=options["shrinkage"]
        )
    else:
        votes = {} if regression else {"winner_take_all": True}
        learner = ydf.RandomForestLearner(**common, num_trees=options["num_trees"], **votes)
    validation = None
    if "validation" in spec.splits and boosted:
        valid_inputs, valid_labels = load_inputs(shards_dir, "validation")
        validation = {**pick(valid_inputs, sorted(spec.columns)), "label": valid_labels}
    return learner.train(data, valid=validation, verbose=0)


def check_matches_ydf(
    forest: Any, model: keras.Model, spec: Spec, inputs: dict[str, np.ndarray], classes: int | None
) -> float:
    """The largest |Keras model - YDF| on `inputs`; raises beyond PARITY_TOLERANCE (relative above 1)."""
    expected = ydf_outputs(forest, pick(inputs, sorted(spec.columns)), classes)
    actual = np.asarray(model(model_inputs(spec, inputs), training=False))
    max_diff = float(np.abs(actual - expected).max())
    allowed = PARITY_TOLERANCE * max(1.0, float(np.abs(expected).max()))  # relative for large regression values
    if max_diff > allowed:
        raise RuntimeError(f"the exported forest differs from YDF's predictions by {max_diff:.3g} > {allowed:.3g}")
    return max_diff


def forest_history(forest: Any) -> dict[str, list[float]]:
    """The validation loss per iteration if YDF logged one (history.json; the trainer adds the seconds)."""
    logs = forest.training_logs() if hasattr(forest, "training_logs") else []
    losses = [entry.evaluation.loss for entry in logs if entry.evaluation and entry.evaluation.loss is not None]
    return {"val_loss": [float(value) for value in losses]} if losses else {}


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
