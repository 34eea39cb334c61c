"""Dataset preparation: the real tfds path for the project's builder and for MNIST from a manual_dir."""

from __future__ import annotations

import hashlib
import shutil
import socket
import time

import pytest
from helpers import require_mnist

from workflow.data import download as datasets
from workflow.infra.atomic import read_json


def test_digits_builder_prepares_through_tfds(digits_prepared):
    """sklearn_digits goes through download_and_prepare: 1,437 train and 360 test examples, no raw files."""
    manifest = read_json(digits_prepared["manifest"])

    assert manifest["name"] == "sklearn_digits"
    assert manifest["splits"] == {"train": 1437, "test": 360}
    assert manifest["supervised_keys"] == ["image", "label"]
    assert manifest["raw_files"] == {}


def test_missing_raw_files_fail_fast_and_are_named(tmp_path, monkeypatch):
    """Offline and without the files, MNIST fails within seconds naming every missing file."""
    monkeypatch.setattr(datasets, "reachable", lambda url, timeout: False)
    empty = tmp_path / "manual"
    empty.mkdir()
    (empty / "train-images-idx3-ubyte.gz").write_bytes(b"present, so not named")

    started = time.monotonic()
    with pytest.raises(datasets.DatasetUnavailableError) as caught:
        datasets.prepare(
            tfds_name="mnist", manual_dir=str(empty), data_dir=str(tmp_path / "tfds"), manifest=str(tmp_path / "m.json")
        )

    assert time.monotonic() - started < 20
    message = str(caught.value)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert name in message
    assert "train-images-idx3-ubyte.gz" not in message
    assert str(empty) in message
    assert not (tmp_path / "m.json").exists()


def test_unreachable_host_is_detected_quickly():
    """A closed local port counts as unreachable, well within the timeout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    started = time.monotonic()
    assert datasets.reachable(f"http://127.0.0.1:{port}/x", timeout=3.0) is False
    assert time.monotonic() - started < 3.0


def test_mnist_prepares_offline_from_manual_dir(tmp_path):
    """The real tfds mnist builder prepares from the shared original files, with their registered sha256."""
    manual = tmp_path / "manual"
    shutil.copytree(require_mnist(), manual)

    summary = datasets.prepare(
        tfds_name="mnist",
        manual_dir=str(manual),
        data_dir=str(tmp_path / "tfds"),
        manifest=str(tmp_path / "prepared.json"),
    )

    assert summary["splits"] == {"train": 60000, "test": 10000}
    digest = hashlib.sha256((manual / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert summary["raw_files"]["t10k-labels-idx1-ubyte.gz"]["sha256"] == digest
