"""The model catalog: every built-in model's name, family and builder, read without importing TensorFlow.

The DAG is built from it (which conversions a model takes, which data it needs) and the trainer
builds from it. A model of the researcher's own (`model.code` in the config, workflow/config/usercode.py)
is an image model whose builder is their function; the built-in image models are reached the same
way, through their entry's module and function (`workflow.models.images.build_model`).
`tests/test_usercode.py` checks that configs/schema.yaml has a `$defs/model_<name>` for exactly these
names and that every image builder keeps the contract a user's builder is held to.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model. Its family says how its builder is called and what it returns:
    image: (input_shape, num_classes, **options) -> keras.Model (the contract of a user's builder);
    table: (options, columns, num_classes, train_features) -> keras.Model (FeatureSpace, adapted);
    forest: (options, train_settings, shards_dir, spec, seed) -> forests.FittedForest (YDF, fitted)."""

    family: str
    module: str
    function: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry("image", "workflow.models.images", "build_mlp"),
    "cnn": ModelEntry("image", "workflow.models.images", "build_cnn"),
    "lenet5": ModelEntry("image", "workflow.models.images", "build_lenet5"),
    "resnet": ModelEntry("image", "workflow.models.images", "build_resnet"),
    "linear": ModelEntry("table", "workflow.models.tables", "build_table_model"),
    "wide_and_deep": ModelEntry("table", "workflow.models.tables", "build_table_model"),
    "gradient_boosted_trees": ModelEntry("forest", "workflow.models.forests", "fit_forest_model"),
    "random_forest": ModelEntry("forest", "workflow.models.forests", "fit_forest_model"),
}
# The trainer imports builders by name from here, which no import statement shows: the train rule
# names these modules in its code digest (rules/train.smk), so editing one reruns training.
BUILDER_MODULES = tuple(sorted({entry.module for entry in MODELS.values()}))

TABLE_MODELS = tuple(name for name, entry in MODELS.items() if entry.family == "table")
FOREST_MODELS = tuple(name for name, entry in MODELS.items() if entry.family == "forest")
IMAGE_MODELS = tuple(name for name, entry in MODELS.items() if entry.family == "image")


def builder(name: str) -> Callable[..., Any]:
    """The builder function of built-in model `name`, imported (TensorFlow comes with it)."""
    entry = MODELS[name]
    return getattr(importlib.import_module(entry.module), entry.function)


def family(model: dict) -> str:
    """The family of an experiment's `model` section: a model with `code` is the user's image model."""
    if model.get("code"):
        return "image"
    return MODELS[model["name"]].family
