"""Keras models for tables: FeatureSpace preprocessing described in YAML, then a linear or wide-and-deep head.

`model.features` maps a column to its preprocessing (keras.utils.FeatureSpace, the Keras 3 successor
of tf.feature_column), either a type name or a dict with the type's options:

    float               the value as it is
    float_normalized    (x - mean) / std, the statistics adapted on the train split
    float_discretized   num_bins equal-frequency bins (one-hot, or an embedding)
    integer_categorical vocabulary lookup of integers, adapted; max_tokens, num_oov_indices
    string_categorical  vocabulary lookup of strings, adapted; max_tokens, num_oov_indices
    integer_hashed      num_bins hash buckets of integers
    string_hashed       num_bins hash buckets of strings

Categorical, hashed and discretized features are one-hot encoded, or with `embedding_dim: d` fed
to a trainable embedding of d numbers. `model.crosses` lists feature crosses: {features: [a, b],
crossing_dim: n} hashes each combination of the features' values into n one-hot buckets.
Only the columns listed are used; the key "*" stands for every column not listed (`"*": float_normalized`).
Without `model.features` every column is used with a default by dtype (float32: float_normalized,
int64: integer_categorical, string: string_categorical).

The preprocessing layers are part of the model: the trained model.keras, and the SavedModel
export, take a dict of raw column values. Models (class probabilities; for a regression target,
one linear output):

    linear          one Dense layer on all encoded features: (multinomial) logistic regression, or
                    linear regression
    wide_and_deep   Cheng et al. 2016: a linear part on the one-hot features and crosses (wide)
                    plus an MLP on the numeric features and embeddings (deep), summed before softmax
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import keras
import tensorflow as tf

from workflow.models.catalog import TABLE_MODELS

FeatureSpace: TypeAlias = keras.utils.FeatureSpace

# Here, not in workflow/deploy/formats.py (which formats a model converts to): that module is no part of
# the train step's code digest, so editing it reruns no training.
NUMERIC_TYPES = ("float", "float_normalized")
DEFAULT_TYPE = {"float32": "float_normalized", "int64": "integer_categorical", "string": "string_categorical"}
TYPE_DTYPES = {
    "float": {"float32", "int64"},
    "float_normalized": {"float32", "int64"},
    "float_discretized": {"float32", "int64"},
    "integer_categorical": {"int64"},
    "string_categorical": {"string"},
    "integer_hashed": {"int64"},
    "string_hashed": {"string"},
}


def feature_settings(
    options: dict[str, Any], columns: Mapping[str, Mapping[str, str]], where: str = "model.features"
) -> dict[str, dict[str, Any]]:
    """Column -> {"type", options...} from `model.features` (or defaults by dtype), checked against the table."""
    wanted = dict(options.get("features") or {name: DEFAULT_TYPE[column["dtype"]] for name, column in columns.items()})
    if "*" in wanted:  # every column not listed, with this type
        rest = wanted.pop("*")
        wanted.update({name: rest for name in columns if name not in wanted})
    settings = {}
    for name, setting in sorted(wanted.items()):
        if name not in columns:
            raise ValueError(
                f"{where}.{name}: the table has no column {name!r}; its columns: {', '.join(sorted(columns))}"
            )
        setting = {"type": setting} if isinstance(setting, str) else dict(setting)
        kind, dtype = setting.get("type"), columns[name]["dtype"]
        if kind not in TYPE_DTYPES:
            raise ValueError(f"{where}.{name}.type: unknown feature type {kind!r}; known: {', '.join(TYPE_DTYPES)}")
        if dtype not in TYPE_DTYPES[kind]:
            raise ValueError(
                f"{where}.{name}: type {kind} does not take a {dtype} column "
                f"(takes {', '.join(sorted(TYPE_DTYPES[kind]))})"
            )
        if kind in ("float_discretized", "integer_hashed", "string_hashed") and not setting.get("num_bins"):
            raise ValueError(f"{where}.{name}: type {kind} needs num_bins")
        if setting.get("embedding_dim") and kind in NUMERIC_TYPES:
            raise ValueError(
                f"{where}.{name}: embedding_dim needs a categorical, hashed or discretized type, not {kind}"
            )
        settings[name] = setting
    for index, cross in enumerate(options.get("crosses") or []):
        for name in cross["features"]:
            if name not in settings or settings[name]["type"] in NUMERIC_TYPES:
                raise ValueError(
                    f"model.crosses[{index}]: {name!r} must be a categorical, hashed or discretized feature "
                    "of model.features"
                )
    return settings


def build_feature_space(settings: dict[str, dict[str, Any]], crosses: Sequence[dict[str, Any]]) -> FeatureSpace:
    """An unadapted FeatureSpace with one output per feature and cross (output_mode="dict")."""
    features = {}
    for name, setting in settings.items():
        kind, mode = setting["type"], "int" if setting.get("embedding_dim") else "one_hot"
        if kind == "float":
            features[name] = FeatureSpace.float(name=name)
        elif kind == "float_normalized":
            features[name] = FeatureSpace.float_normalized(name=name)
        elif kind == "float_discretized":
            features[name] = FeatureSpace.float_discretized(setting["num_bins"], output_mode=mode, name=name)
        elif kind in ("integer_categorical", "string_categorical"):
            build = (
                FeatureSpace.integer_categorical if kind == "integer_categorical" else FeatureSpace.string_categorical
            )
            features[name] = build(
                max_tokens=setting.get("max_tokens"),
                num_oov_indices=setting.get("num_oov_indices", 1),
                output_mode=mode,
                name=name,
            )
        else:
            build = FeatureSpace.integer_hashed if kind == "integer_hashed" else FeatureSpace.string_hashed
            features[name] = build(setting["num_bins"], output_mode=mode, name=name)
    return FeatureSpace(
        features,
        crosses=[FeatureSpace.cross(tuple(cross["features"]), cross["crossing_dim"]) for cross in crosses],
        output_mode="dict",
    )


def build_table_model(
    options: dict[str, Any],
    columns: Mapping[str, Mapping[str, str]],
    num_classes: int | None,
    train_features: tf.data.Dataset,
) -> keras.Model:
    """The model named by `options["name"]` (linear, wide_and_deep) with its FeatureSpace adapted on
    `train_features` (batches of {column: [batch, 1]}), taking a dict of raw columns.

    `num_classes` None: a regression, one linear output named "prediction" (linear regression for `linear`).
    """
    outputs = num_classes or 1
    settings = feature_settings(options, columns)
    crosses = options.get("crosses") or []
    space = build_feature_space(settings, crosses)
    space.adapt(train_features)
    inputs, encoded = space.get_inputs(), space.get_encoded_features()
    wide, deep = [], []
    for name, setting in settings.items():
        if setting.get("embedding_dim"):
            size = _encoded_size(space, name, setting)
            vectors = keras.layers.Embedding(size, setting["embedding_dim"], name=f"embedding_{name}")(encoded[name])
            deep.append(keras.layers.Flatten(name=f"embedding_{name}_flat")(vectors))
        elif setting["type"] in NUMERIC_TYPES:
            deep.append(encoded[name])
        else:
            wide.append(encoded[name])
    wide += [encoded[name] for name in encoded if name not in settings]  # the crosses
    name = str(options.get("name"))
    if name == "linear":
        logits = keras.layers.Dense(outputs, name="logits")(_concatenate(wide + deep, "features"))
    elif name == "wide_and_deep":
        parts = []
        if wide:
            parts.append(keras.layers.Dense(outputs, name="wide_logits")(_concatenate(wide, "wide_features")))
        if deep:
            x = _concatenate(deep, "deep_features")
            for index, units in enumerate(options.get("hidden_units", [64, 32])):
                x = keras.layers.Dense(units, activation="relu", name=f"deep_{index}")(x)
                if options.get("dropout"):
                    x = keras.layers.Dropout(options["dropout"], name=f"deep_dropout_{index}")(x)
            parts.append(keras.layers.Dense(outputs, name="deep_logits")(x))
        logits = parts[0] if len(parts) == 1 else keras.layers.Add(name="logits")(parts)
    else:
        raise ValueError(f"model.name: unknown table model {name!r}; known: {', '.join(TABLE_MODELS)}")
    if num_classes is None:
        prediction = keras.layers.Activation("linear", dtype="float32", name="prediction")(logits)
        return keras.Model(inputs, prediction, name=name)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=name)


def _encoded_size(space: FeatureSpace, name: str, setting: dict[str, Any]) -> int:
    """How many distinct indices a feature encoded as "int" takes (the embedding's input size)."""
    if setting["type"] in ("integer_categorical", "string_categorical"):
        return int(space.preprocessors[name].vocabulary_size())
    return int(setting["num_bins"])


def _concatenate(parts: list[Any], name: str) -> Any:
    if not parts:
        raise ValueError("model.features: no feature for this part of the model")
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=name)(parts)
