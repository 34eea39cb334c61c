"""A shards folder: its spec.json as a typed Spec, and sha256-checked shard paths (no TensorFlow imported).

The tfrecord step writes the folder (workflow/data/tfrecord.py); every step that reads data reads it through
here, so steps that only need spec.json start without TensorFlow, and a spec.json that is not what the
tfrecord step writes is refused once, naming the file and the key, instead of a KeyError deep in a step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from collections.abc import Mapping
from typing import Any

from workflow.infra.atomic import read_json

SPEC_NAME = "spec.json"


class ShardError(ValueError):
    """A shard that is missing, truncated or altered since spec.json was written, or a spec.json that is not
    one the tfrecord step writes."""


@dataclasses.dataclass(frozen=True)
class Shard:
    file: str  # relative to the shards folder
    examples: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Split:
    source_split: str  # the tfds split expression it was read from ("train[:90%]")
    examples: int
    shards: tuple[Shard, ...]


@dataclasses.dataclass(frozen=True)
class Label:
    """Classes (int64, their count and names) or a regression target (float32, task "regression")."""

    dtype: str
    num_classes: int | None = None
    names: tuple[str, ...] | None = None
    task: str = "classification"

    @property
    def classes(self) -> int:
        """The class count of a classification's label (from_json refuses one without it)."""
        if self.num_classes is None:
            raise ValueError(f"a {self.task} label has no class count")
        return self.num_classes


@dataclasses.dataclass(frozen=True)
class Spec:
    """spec.json: what the data is (images of one shape, or typed table columns), its label, its splits and
    shards, and the tfds dataset it came from."""

    source: Mapping[str, str]  # name, version, full_name
    label: Label
    splits: Mapping[str, Split]
    # Images: uint8 of image_shape, and no columns; a table: its columns (at least one), and no image_shape.
    image_shape: tuple[int, ...] = ()
    columns: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)  # name -> {"dtype": ...}

    @property
    def is_table(self) -> bool:
        return bool(self.columns)

    def examples(self, split: str) -> int:
        return self.splits[split].examples

    def to_json(self) -> dict[str, Any]:
        """What spec.json holds."""
        inputs: dict[str, Any] = {"image": {"dtype": "uint8", "shape": list(self.image_shape)}}
        if self.is_table:
            inputs = {"columns": {name: dict(column) for name, column in self.columns.items()}}
        label: dict[str, Any] = {"dtype": self.label.dtype}
        if self.label.num_classes is not None:
            label["num_classes"] = self.label.num_classes
        if self.label.names is not None:
            label["names"] = list(self.label.names)
        if self.label.task != "classification":
            label["task"] = self.label.task
        return {
            "source": dict(self.source),
            "features": {**inputs, "label": label},
            "splits": {
                name: {**dataclasses.asdict(split), "shards": [dataclasses.asdict(shard) for shard in split.shards]}
                for name, split in self.splits.items()
            },
        }

    @classmethod
    def from_json(cls, data: Any, where: str = SPEC_NAME) -> Spec:
        """A Spec from spec.json's content; ShardError naming `where` and the key when it is not one."""
        features = _get(data, "features", dict, where)
        if ("image" in features) == ("columns" in features):
            raise ShardError(f"{where}: features needs exactly one of image (an image's shape) and columns (a table)")
        splits = _get(data, "splits", dict, where)
        source = data.get("source") or {}
        if not isinstance(source, dict) or not all(isinstance(value, str) for value in source.values()):
            raise ShardError(f"{where}: source must be a mapping of texts (name, version, full_name)")
        return cls(
            source=source,
            label=_label(_get(features, "label", dict, where, "features."), where),
            splits={name: _split(entry, where, f"splits.{name}.") for name, entry in splits.items()},
            image_shape=_image_shape(features, where) if "image" in features else (),
            columns=_columns(features, where) if "columns" in features else {},
        )


def _label(label: dict[str, Any], where: str) -> Label:
    task = label.get("task", "classification")
    if task not in ("classification", "regression"):
        raise ShardError(f"{where}: features.label.task is {task!r}, not classification or regression")
    classes = None if task == "regression" else _get(label, "num_classes", int, where, "features.label.")
    names = label.get("names")
    if names is not None and not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise ShardError(f"{where}: features.label.names must be a list of texts")
    dtype = _get(label, "dtype", str, where, "features.label.")
    return Label(dtype, classes, None if names is None else tuple(names), task)


def _image_shape(features: dict[str, Any], where: str) -> tuple[int, ...]:
    shape = _get(_get(features, "image", dict, where, "features."), "shape", list, where, "features.image.")
    if not shape or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape):
        raise ShardError(f"{where}: features.image.shape must be positive integers, is {shape!r}")
    return tuple(shape)


def _columns(features: dict[str, Any], where: str) -> dict[str, dict[str, str]]:
    columns = _get(features, "columns", dict, where, "features.")
    if not columns:
        raise ShardError(f"{where}: features.columns is empty")
    for name, column in columns.items():
        if _get(column, "dtype", str, where, f"features.columns.{name}.") not in ("float32", "int64", "string"):
            raise ShardError(f"{where}: features.columns.{name}.dtype must be float32, int64 or string")
    return columns


def _get(data: Any, key: str, kind: type, where: str, prefix: str = "") -> Any:
    """data[key], which must be of `kind`; ShardError naming the file and the key otherwise."""
    if not isinstance(data, dict) or key not in data:
        raise ShardError(f"{where}: {prefix}{key} is missing")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ShardError(f"{where}: {prefix}{key} must be {kind.__name__}, is {type(value).__name__}: {value!r}")
    return value


def _split(entry: Any, where: str, prefix: str) -> Split:
    shards = []
    for index, shard in enumerate(_get(entry, "shards", list, where, prefix)):
        at = f"{prefix}shards[{index}]."
        shards.append(Shard(_get(shard, "file", str, where, at), _get(shard, "examples", int, where, at),
                            _get(shard, "sha256", str, where, at)))  # fmt: skip
        if pathlib.PurePath(shards[-1].file).name != shards[-1].file:  # a shard lives in the folder itself
            raise ShardError(f"{where}: {at}file {shards[-1].file!r} is not a file name of the shards folder")
    return Split(_get(entry, "source_split", str, where, prefix), _get(entry, "examples", int, where, prefix),
                 tuple(shards))  # fmt: skip


def sha256_file(path: str | pathlib.Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | pathlib.Path) -> str:
    """sha256 of a file, or of a folder: its files' relative paths and contents, in sorted order."""
    root = pathlib.Path(path)
    if not root.is_dir():
        return sha256_file(root)
    digest = hashlib.sha256()
    for file in sorted(item for item in root.rglob("*") if item.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def read_spec(shards_dir: str | pathlib.Path) -> Spec:
    """spec.json of a shards folder."""
    path = pathlib.Path(shards_dir) / SPEC_NAME
    return Spec.from_json(read_json(path), str(path))


def shard_paths(shards_dir: str | pathlib.Path, spec: Spec, split: str, verify: bool = True) -> list[str]:
    """Paths of a split's shards; with `verify`, each shard's sha256 must match spec.json."""
    paths = []
    for entry in spec.splits[split].shards:
        path = pathlib.Path(shards_dir) / entry.file
        if not path.is_file():
            raise ShardError(f"{path}: shard listed in {SPEC_NAME} is missing")
        if verify and sha256_file(path) != entry.sha256:
            raise ShardError(
                f"{path}: sha256 differs from {SPEC_NAME} (the shard is truncated or altered); "
                f"rerun the tfrecord step (delete the shards folder)"
            )
        paths.append(str(path))
    return paths
