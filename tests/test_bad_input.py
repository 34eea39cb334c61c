"""Bad input never loses data: a damaged raw file, a SavedModel with its variables missing, a full and
a read-only results folder. Each error names what is wrong; earlier results stay byte-identical."""

from __future__ import annotations

import contextlib
import hashlib
import pathlib
import shutil
import subprocess

import keras
import pytest
from helpers import copy_repository, require_mnist, snakemake

from workflow.data import download
from workflow.deploy.export import write_saved_model
from workflow.deploy.tflite import convert_tflite

RUN = "results/runs/digits_mlp/seed0"


def test_raw_file_with_one_flipped_byte_fails_its_checksum_by_name(tmp_path, reliability):
    """tfds checks the sha256 of every raw MNIST file; the error names the damaged file. Nothing is prepared."""
    manual = tmp_path / "manual"
    shutil.copytree(require_mnist(), manual)
    damaged = manual / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(damaged.read_bytes())
    content[100] ^= 0xFF
    damaged.write_bytes(bytes(content))

    with pytest.raises(Exception, match="wrong checksum") as caught:
        download.prepare(tfds_name="mnist", manual_dir=str(manual), data_dir=str(tmp_path / "tfds"),
                         manifest=str(tmp_path / "prepared.json"))  # fmt: skip

    assert str(damaged) in str(caught.value)
    assert not (tmp_path / "prepared.json").exists()
    reliability("one flipped byte in a raw MNIST file", "step download", "checksum error naming the file", 0)


def test_savedmodel_without_variables_is_refused_by_name(tmp_path, reliability):
    """Conversion of a SavedModel folder whose variables are gone fails at once, naming the folder and the part."""
    model = keras.Sequential([keras.Input((8, 8, 1), name="images"), keras.layers.Flatten(), keras.layers.Dense(10)])
    saved = tmp_path / "saved_model"
    write_saved_model(model, saved)
    shutil.rmtree(saved / "variables")

    with pytest.raises(ValueError, match=r"not a complete SavedModel \(missing: variables/variables.index\)") as caught:
        convert_tflite(saved_model_dir=str(saved), shards_dir="unused", output_path=str(tmp_path / "m.tflite"),
                       variant="float32")  # fmt: skip

    assert str(saved) in str(caught.value)
    assert not (tmp_path / "m.tflite").exists()
    reliability("SavedModel with its variables folder deleted", "step tflite", "refused naming the folder", 0)


@contextlib.contextmanager
def tmpfs(where: pathlib.Path, megabytes: int):
    """A small tmpfs mounted at `where` (needs root with CAP_SYS_ADMIN, as on this project's machines)."""
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs to fill it and needs root with mount rights: {result.stderr}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def digests(root: pathlib.Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (root / "results").rglob("*")
        if path.is_file() and not path.relative_to(root).as_posix().startswith(("results/logs", "results/benchmarks"))
    }


def fill(folder: pathlib.Path) -> pathlib.Path:
    """Write until the file system is full; return the filler file."""
    filler = folder / "filler"
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * (1 << 20))
            handle.flush()
    with contextlib.suppress(OSError), open(folder / "filler-small", "wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
    return filler


def test_full_and_read_only_results_fail_clearly_and_lose_nothing(tmp_path, reliability):
    """results/ on a 64 MB tmpfs: a finished evaluate, then export on a full disk and on a read-only one.
    Each fails naming the cause; every earlier file is byte-identical; once space is back the rerun completes."""
    folder = copy_repository(tmp_path / "repo")
    config = ("--configfile", "one.yaml", "--replace-workflow-config")
    import yaml

    default = yaml.safe_load((folder / "configs/default.yaml").read_text())
    default["experiments"] = {"digits_mlp": {**default["experiments"]["digits_mlp"], "train": {"epochs": 2}}}
    (folder / "one.yaml").write_text(yaml.safe_dump(default))
    with tmpfs(folder / "results", 64) as results:
        first = snakemake(folder, f"{RUN}/metrics.json", "--cores", "2", *config)
        assert first.returncode == 0, first.stderr[-3000:]
        before = digests(folder)

        filler = fill(results)
        full = snakemake(folder, f"{RUN}/export.json", "--cores", "2", *config)
        filler.unlink()
        (results / "filler-small").unlink()

        assert full.returncode != 0
        # The job's log sits on the full disk too, so the cause may only reach Snakemake's own output.
        log = (folder / "results/logs/export/digits_mlp/seed0.log").read_text()
        assert "No space left on device" in log + full.stdout + full.stderr, full.stderr[-3000:]
        assert digests(folder) == before
        assert not (folder / RUN / "saved_model").exists() and not list((folder / RUN).glob(".*tmp-*"))
        reliability("results folder full (ENOSPC)", "step export", "failed naming the cause; earlier files kept", 0)

        subprocess.run(["mount", "-o", "remount,ro", str(results)], check=True)
        try:
            read_only = snakemake(folder, f"{RUN}/export.json", "--cores", "2", *config)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(results)], check=True)

        assert read_only.returncode != 0
        assert "Read-only file system" in read_only.stdout + read_only.stderr, read_only.stderr[-3000:]
        assert digests(folder) == before
        reliability("results folder read-only (EROFS)", "step export", "failed naming the cause; earlier files kept", 0)

        rerun = snakemake(folder, f"{RUN}/export.json", "--cores", "2", *config)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert (folder / RUN / "saved_model" / "saved_model.pb").is_file()
