"""`sklearn_breast_cancer`: scikit-learn's bundled copy of the Wisconsin diagnostic breast cancer data.

569 tumours, 30 real-valued features computed from a digitised image of a fine needle aspirate,
labelled malignant or benign. The data ships inside scikit-learn, so this builder runs the real
tensorflow-datasets `download_and_prepare` path with no network. It is the project's tabular
example: each example is a dict of named float32 features (`mean_radius`, ...) and a class label.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from workflow.data.datasets.csv_table import column_name
from workflow.data.datasets.digits import EveryFifthIsTest


class SklearnBreastCancer(EveryFifthIsTest, tfds.core.GeneratorBasedBuilder):
    """Breast Cancer Wisconsin (Diagnostic), from scikit-learn."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Train/test split by index: every fifth example is test."}

    def _info(self) -> tfds.core.DatasetInfo:
        from sklearn.datasets import load_breast_cancer

        bundle = load_breast_cancer()
        columns = {column_name(name): tfds.features.Scalar(dtype=np.float32) for name in bundle.feature_names}
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "features": tfds.features.FeaturesDict(columns),
                    "label": tfds.features.ClassLabel(names=[str(name) for name in bundle.target_names]),
                }
            ),
            supervised_keys=("features", "label"),
            homepage="https://archive.ics.uci.edu/dataset/17",
            citation="Street, Wolberg and Mangasarian (1993). Nuclear feature extraction for breast tumor diagnosis.",
        )

    def _all_examples(self) -> Iterator[dict[str, Any]]:
        from sklearn.datasets import load_breast_cancer

        bundle = load_breast_cancer()
        names = [column_name(name) for name in bundle.feature_names]
        for row, label in zip(bundle.data.astype(np.float32), bundle.target, strict=True):
            yield {"features": dict(zip(names, row, strict=True)), "label": int(label)}
