"""A user's CSV file as a tensorflow-datasets dataset, so it takes the same tfrecord step as any builder.

The file is read with pandas; columns are typed (float -> float32, integer and boolean -> int64,
anything else -> string), named as identifiers (they become the served model's input names), and
stored with `tfds.dataset_builders.store_as_tfds_dataset` as {"features": {column: value}, "label"}.
Rows with a missing value are dropped and counted. Every fifth row is the test split, as for the
project's bundled tables.
"""

from __future__ import annotations

import logging
import pathlib
import re
import shutil
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from workflow.data.datasets.digits import TEST_EVERY
from workflow.data.shards import sha256_file

log = logging.getLogger(__name__)
VERSION = "1.0.0"


def column_name(name: str) -> str:
    """A CSV header as an identifier (a signature key): 'Body mass (g)' -> 'body_mass_g'."""
    return re.sub(r"\W+", "_", str(name).strip()).strip("_").lower()


def tfds_name(dataset: str) -> str:
    """The tfds name of the dataset key's CSV (tfds names are lowercase identifiers)."""
    return "csv_" + re.sub(r"\W+", "_", dataset).lower()


def read_table(
    path: str, label: str, task: str = "classification"
) -> tuple[dict[str, np.ndarray], list[str], np.ndarray, int]:
    """Typed columns, class names, labels (integer classes, or float32 targets for a regression: no
    class names) and the number of rows dropped for missing values."""
    import pandas as pd

    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"datasets.<key>.csv.path: {path} does not exist")
    try:
        frame = pd.read_csv(file)
    except (ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path}: not a readable CSV file: {error}") from None
    if label not in frame.columns:
        raise ValueError(f"{path}: no column {label!r} (csv.label); its columns: {', '.join(map(str, frame.columns))}")
    names = {column: column_name(column) for column in frame.columns if column != label}
    clashes = sorted({name for name in names.values() if list(names.values()).count(name) > 1 or name in ("", "label")})
    if clashes:
        raise ValueError(f"{path}: columns {clashes} collide or are not usable as names once made identifiers")
    complete = frame.dropna()
    dropped = len(frame) - len(complete)
    if complete.empty:
        raise ValueError(f"{path}: every row has a missing value")
    columns = {}
    for column, name in names.items():
        values = complete[column]
        if values.dtype.kind == "f":
            columns[name] = values.to_numpy(np.float32)
        elif values.dtype.kind in "iub":
            columns[name] = values.to_numpy(np.int64)
        else:
            columns[name] = values.astype(str).to_numpy(object)
    if task == "regression":
        if complete[label].dtype.kind not in "iuf":
            raise ValueError(
                f"{path}: column {label!r} (csv.label) is not numeric, so it cannot be a regression target"
            )
        return columns, [], complete[label].to_numpy(np.float32), dropped
    classes = sorted(str(value) for value in complete[label].unique())
    index = {name: position for position, name in enumerate(classes)}
    labels = np.asarray([index[str(value)] for value in complete[label]], np.int64)
    return columns, classes, labels, dropped


def prepare_csv(*, dataset: str, path: str, label: str, data_dir: str, task: str = "classification") -> dict[str, Any]:
    """Store the CSV as a tfds dataset in `data_dir`, replacing an earlier one; what prepared.json adds."""
    name = tfds_name(dataset)
    columns, classes, labels, dropped = read_table(path, label, task)
    features = tfds.features.FeaturesDict(
        {
            "features": tfds.features.FeaturesDict(
                {
                    column: tfds.features.Text() if values.dtype == object else tfds.features.Scalar(dtype=values.dtype)
                    for column, values in sorted(columns.items())
                }
            ),
            "label": tfds.features.ClassLabel(names=classes) if classes else tfds.features.Scalar(dtype=np.float32),
        }
    )
    # Read first, then replace: a bad file fails before the previous preparation is removed, and an
    # edited one is never served from a stale copy (tfds would reuse a prepared folder as it is).
    shutil.rmtree(pathlib.Path(data_dir) / name, ignore_errors=True)
    splits: dict[str, list[tuple[int, dict[str, Any]]]] = {"train": [], "test": []}
    for row in range(len(labels)):
        example = {"features": {column: values[row] for column, values in columns.items()}, "label": labels[row].item()}
        splits["test" if row % TEST_EVERY == 0 else "train"].append((row, example))
    target = f"classes {', '.join(classes)}" if classes else "a regression target"
    log.info("%s: %d rows (%d dropped for missing values), %d columns, %s", path, len(labels), dropped,
             len(columns), target)  # fmt: skip
    tfds.dataset_builders.store_as_tfds_dataset(
        name=name,
        version=VERSION,
        features=features,
        split_datasets=splits,
        data_dir=data_dir,
        description=f"{path} (column {label!r} is the label)",
        disable_shuffling=True,  # the file's row order, as the bundled tables keep theirs
    )
    return {
        "tfds_name": f"{name}:{VERSION}",
        "csv": {
            "path": str(path),
            "sha256": sha256_file(path),
            "label": label,
            "task": task,
            "rows_dropped_for_missing_values": dropped,
        },
    }
