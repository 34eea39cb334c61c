"""A tensorflow-datasets builder of the example's own files: raw/shapes_{train,test}.npz (make_raw.py).

Named in the config as `datasets.shapes.code: {file: examples/shapes/shapes.py, class: Shapes}`,
with `manual_dir: examples/shapes/raw`; the download step prepares it like any tfds dataset.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds


class Shapes(tfds.core.GeneratorBasedBuilder):
    """16x16 grey square outlines, filled disks and crosses of random size and place."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put shapes_train.npz and shapes_test.npz (examples/shapes/make_raw.py) in manual_dir."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="Square outlines, filled disks and crosses on a 16x16 black field.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(16, 16, 1)),
                    "label": tfds.features.ClassLabel(names=["square", "disk", "cross"]),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        folder = dl_manager.manual_dir
        return {
            "train": self._generate_examples(folder / "shapes_train.npz"),
            "test": self._generate_examples(folder / "shapes_test.npz"),
        }

    def _generate_examples(self, path):
        with path.open("rb") as handle:
            arrays = np.load(handle)
            images, labels = arrays["images"], arrays["labels"]
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": image[..., None], "label": int(label)}
