"""Download and prepare datasets with tensorflow-datasets, failing fast when offline.

`prepare` handles any tfds catalog name and the project's own builders (workflow/data/datasets/, which
importing this module registers). Raw files may come from a `manual_dir`; tfds checks their sha256 itself.
"""

from __future__ import annotations

import logging
import pathlib
import re
import time
import urllib.parse
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from workflow.config import usercode
from workflow.data.datasets import breast_cancer, diabetes, digits  # noqa: F401  (register the project's builders with tfds)
from workflow.data.datasets.csv_table import prepare_csv
from workflow.infra.atomic import write_json
from workflow.infra.runtime import reachable

log = logging.getLogger(__name__)


class DatasetUnavailableError(RuntimeError):
    """The raw files a builder needs are neither in manual_dir nor reachable."""


def prepare(
    *,
    tfds_name: str | None,
    manual_dir: str | None,
    data_dir: str,
    manifest: str,
    csv: dict[str, str] | None = None,
    dataset: str | None = None,
    code: dict[str, str] | None = None,
    connect_timeout: float = 3.0,
) -> dict[str, Any]:
    """Run tfds `download_and_prepare` into `data_dir` and write a manifest of what was prepared.

    With `csv` ({path, label}) the dataset `dataset` is the user's file, stored as a tfds dataset first.
    With `code` ({file or module, class}) the builder is the user's own tfds builder class.
    """
    started = time.monotonic()
    from_csv = prepare_csv(dataset=dataset or "csv", data_dir=data_dir, **csv) if csv else None
    if code:
        builder = user_builder(code, data_dir)
    else:
        builder = tfds.builder(from_csv["tfds_name"] if from_csv else tfds_name, data_dir=data_dir)
    if not _is_prepared(builder):
        _check_sources(builder, manual_dir, connect_timeout)
        usable = manual_dir is not None and pathlib.Path(manual_dir).is_dir()
        config = tfds.download.DownloadConfig(manual_dir=manual_dir) if usable else None
        log.info("preparing %s into %s", builder.info.full_name, data_dir)
        builder.download_and_prepare(download_config=config)
    else:
        log.info("%s is already prepared in %s", builder.info.full_name, data_dir)
    summary = describe(builder, data_dir)
    usable_manual_dir = manual_dir if manual_dir and pathlib.Path(manual_dir).is_dir() else None
    summary["raw_files"] = _raw_files(builder, usable_manual_dir)
    if from_csv:
        summary["csv"] = from_csv["csv"]
    summary["seconds"] = round(time.monotonic() - started, 3)
    write_json(manifest, summary)
    return summary


def user_builder(code: dict[str, str], data_dir: str) -> tfds.core.DatasetBuilder:
    """The user's tfds builder class (datasets.<key>.code), imported and made for `data_dir`."""
    builder_class = usercode.load(code)
    if not (isinstance(builder_class, type) and issubclass(builder_class, tfds.core.DatasetBuilder)):
        raise TypeError(f"datasets code {code}: {builder_class!r} is not a tfds.core.DatasetBuilder subclass")
    return builder_class(data_dir=data_dir)


def load_builder(manifest: dict[str, Any]) -> tfds.core.DatasetBuilder:
    """The builder of a prepared dataset, from the download step's manifest.

    A builder whose code is not registered here (the user's own) is read from its prepared files,
    which describe it whole (dataset_info.json, features.json).
    """
    try:
        return tfds.builder(f"{manifest['name']}:{manifest['version']}", data_dir=manifest["data_dir"])
    except tfds.core.registered.DatasetNotFoundError:
        return tfds.builder_from_directory(pathlib.Path(manifest["data_dir"], manifest["full_name"]))


def damaged_file(builder: tfds.core.DatasetBuilder, split: str) -> tuple[str, str] | None:
    """(path, error) of the first prepared file of `split` (a split expression) that does not read through.

    Each file is read whole and on its own: tfds reads them interleaved, and its error gives only a byte
    offset. None when they all read (or the format is not TFRecord, the one checked here).
    """
    import tensorflow as tf  # not at the top: the download step does not need it

    if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        return None
    for instruction in builder.info.splits[split].file_instructions:
        try:
            tf.data.TFRecordDataset(instruction.filename).reduce(np.int64(0), lambda count, _: count + 1)
        except tf.errors.OpError as error:
            # "{{function_node ...}} corrupted record at 125950 [Op:ReduceDataset]": keep what it says
            return str(instruction.filename), re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*", "", error.message)
    return None


def describe(builder: tfds.core.DatasetBuilder, data_dir: str) -> dict[str, Any]:
    """Name, version, splits and supervised keys of a prepared builder."""
    return {
        "name": builder.info.full_name.split("/")[0]
        if builder.builder_config is None
        else "/".join(builder.info.full_name.split("/")[:2]),
        "version": str(builder.info.version),
        "full_name": builder.info.full_name,
        "data_dir": str(data_dir),
        "splits": {name: split.num_examples for name, split in builder.info.splits.items()},
        "supervised_keys": list(builder.info.supervised_keys or []),
    }


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
    return pathlib.Path(builder.data_dir, "dataset_info.json").exists()


def _expected_files(builder: tfds.core.DatasetBuilder) -> dict[str, str]:
    """File name -> URL of every raw file the builder registers (none for generated data)."""
    infos = builder.url_infos or {}
    return {
        (info.filename or pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name): url
        for url, info in infos.items()
    }


def _check_sources(builder: tfds.core.DatasetBuilder, manual_dir: str | None, timeout: float) -> None:
    """Fail within seconds, naming the files, when they are neither on disk nor reachable."""
    expected = _expected_files(builder)
    folder = pathlib.Path(manual_dir) if manual_dir else None
    present = {path.name for path in folder.iterdir()} if folder and folder.is_dir() else set()
    missing = {name: url for name, url in expected.items() if name not in present}
    unreachable = sorted({url for url in missing.values() if not reachable(url, timeout)})
    if unreachable:
        names = ", ".join(sorted(missing))
        if folder is None:
            where = "no manual_dir is configured"
        else:
            where = f"manual_dir {manual_dir}" + ("" if folder.is_dir() else " does not exist")
        raise DatasetUnavailableError(
            f"{builder.info.name}: missing raw files {names} ({where}), and their host cannot be "
            f"reached: {unreachable[0]}. Put the files in a folder and set datasets.<key>.manual_dir "
            f"to it, or run the download step where there is internet (it is a localrule)."
        )


def _raw_files(builder: tfds.core.DatasetBuilder, manual_dir: str | None) -> dict[str, Any]:
    """The registered sha256 of each raw file, and where it was read from (a manual_dir that exists, or its URL)."""
    infos = builder.url_infos or {}
    return {
        name: {"url": url, "sha256": infos[url].checksum, "source": "manual_dir" if manual_dir else "url"}
        for name, url in _expected_files(builder).items()
    }
