"""Write raw/shapes_train.npz and raw/shapes_test.npz: 16x16 grey images of square outlines, filled disks and crosses.

The example's "files it has": a researcher's dataset usually arrives as files; these are made here,
deterministically (seed 0), so the example ships them (about 40 KB) and needs no download.
Run from the repository root: python examples/shapes/make_raw.py
"""

from __future__ import annotations

import pathlib

import numpy as np

SIZE = 16
CLASSES = ("square", "disk", "cross")


def draw(kind: int, rng: np.random.Generator) -> np.ndarray:
    """One shape of random size and place, white (255) on black."""
    radius = int(rng.integers(4, 7))
    row, column = (int(value) for value in rng.integers(radius, SIZE - radius, size=2))
    rows, columns = np.mgrid[:SIZE, :SIZE]
    if kind == 0:
        outer = (abs(rows - row) <= radius) & (abs(columns - column) <= radius)
        mask = outer & ~((abs(rows - row) <= radius - 2) & (abs(columns - column) <= radius - 2))
    elif kind == 1:
        mask = (rows - row) ** 2 + (columns - column) ** 2 <= radius**2
    else:
        mask = ((abs(rows - row) <= 1) & (abs(columns - column) <= radius)) | (
            (abs(columns - column) <= 1) & (abs(rows - row) <= radius)
        )
    return np.where(mask, 255, 0).astype(np.uint8)


def write(path: pathlib.Path, count: int, rng: np.random.Generator) -> None:
    labels = rng.integers(0, len(CLASSES), size=count)
    images = np.stack([draw(int(label), rng) for label in labels])
    np.savez_compressed(path, images=images, labels=labels.astype(np.int64))


if __name__ == "__main__":
    folder = pathlib.Path(__file__).resolve().parent / "raw"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    write(folder / "shapes_train.npz", 900, rng)
    write(folder / "shapes_test.npz", 300, rng)
