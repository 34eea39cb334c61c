"""`sklearn_diabetes`: scikit-learn's bundled diabetes data (Efron et al. 2004), a regression table.

442 patients, 10 baseline variables as measured (not scikit-learn's scaled copy): age, sex (1 or 2,
an integer category), body mass index, mean blood pressure and six blood serum measurements, and
the target, a quantitative measure of disease progression one year later (25 to 346). The data
ships inside scikit-learn, so this builder runs tfds `download_and_prepare` with no network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from workflow.data.datasets.digits import EveryFifthIsTest

FLOAT_COLUMNS = ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


class SklearnDiabetes(EveryFifthIsTest, tfds.core.GeneratorBasedBuilder):
    """Diabetes progression (Efron, Hastie, Johnstone and Tibshirani 2004), from scikit-learn."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Train/test split by index: every fifth example is test."}

    def _info(self) -> tfds.core.DatasetInfo:
        columns = {name: tfds.features.Scalar(dtype=np.float32) for name in FLOAT_COLUMNS}
        columns["sex"] = tfds.features.Scalar(dtype=np.int64)
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {"features": tfds.features.FeaturesDict(columns), "label": tfds.features.Scalar(dtype=np.float32)}
            ),
            supervised_keys=("features", "label"),
            homepage="https://www4.stat.ncsu.edu/~boos/var.select/diabetes.html",
            citation="Efron, Hastie, Johnstone and Tibshirani (2004). Least Angle Regression. Annals of Statistics.",
        )

    def _all_examples(self) -> Iterator[dict[str, Any]]:
        from sklearn.datasets import load_diabetes

        bundle = load_diabetes(scaled=False)
        names = list(bundle.feature_names)
        for row, target in zip(bundle.data, bundle.target, strict=True):
            values = dict(zip(names, row, strict=True))
            features: dict[str, np.generic] = {name: np.float32(values[name]) for name in FLOAT_COLUMNS}
            features["sex"] = np.int64(round(values["sex"]))
            yield {"features": features, "label": np.float32(target)}
