"""`sklearn_digits`: scikit-learn's bundled copy of the UCI handwritten digits as a tfds builder.

1,797 grey 8x8 images of the digits 0-9 ship inside scikit-learn, so this builder runs the real
tensorflow-datasets `download_and_prepare` path with no network. Pixel values 0-16 are scaled to
0-255 uint8, so the images look like every other tfds image dataset to the rest of the workflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

# Every fifth example (index % 5 == 0) is the test split: fixed, and balanced across classes.
TEST_EVERY = 5


class EveryFifthIsTest:
    """Splits for a builder over data bundled in a package: nothing to download, every fifth example is test.

    A mixin, not a builder: tfds registers every GeneratorBasedBuilder subclass by name.
    The builder provides `_all_examples()`, its examples (feature dicts) in the bundle's order.
    """

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        del dl_manager  # The data ships inside a package: nothing to download.
        return {"train": self._generate_examples(test=False), "test": self._generate_examples(test=True)}

    def _generate_examples(self, test: bool) -> Iterator[tuple[int, dict[str, Any]]]:
        for index, example in enumerate(self._all_examples()):
            if (index % TEST_EVERY == 0) == test:
                yield index, example

    def _all_examples(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError


class SklearnDigits(EveryFifthIsTest, tfds.core.GeneratorBasedBuilder):
    """The UCI ML hand-written digits (optdigits test part) from scikit-learn."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Train/test split by index: every fifth example is test."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation="Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits. UCI.",
        )

    def _all_examples(self) -> Iterator[dict[str, Any]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
        for image, label in zip(images, digits.target, strict=True):
            yield {"image": image, "label": int(label)}
