"""Helpers shared by tests (importable because pyproject sets pytest's pythonpath to tests/)."""

from __future__ import annotations

import copy
import functools
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

# The smallest valid config, for tests that change one key of it.
MINIMAL = {
    "datasets": {"digits": {"tfds_name": "sklearn_digits"}},
    "experiments": {"exp": {"dataset": "digits", "model": {"name": "mlp"}}},
}


def with_change(path: str, value: object) -> dict:
    """A copy of MINIMAL with the dotted key `path` set to `value` (missing mappings on the way created)."""
    changed = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = changed
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return changed


def train_params(**train_overrides: object) -> dict:
    """Complete model and train sections for a small MLP, as the config loader would produce them."""
    from workflow.config import settings as cfg

    return cfg.train_params(cfg.load_config(_small_mlp(train=train_overrides)), "e")


def runtime_params(**runtime_overrides: object) -> dict:
    """A complete `runtime` section (checkpoints, batches per call, TPU) with the overrides."""
    from workflow.config import settings as cfg

    return cfg.train_runtime(cfg.load_config(_small_mlp(runtime=runtime_overrides)), "e")


def _small_mlp(train: dict | None = None, runtime: dict | None = None) -> dict:
    return {
        "datasets": {"d": {"tfds_name": "sklearn_digits"}},
        "experiments": {
            "e": {
                "dataset": "d",
                "model": {"name": "mlp", "hidden_units": [16]},
                "train": {"epochs": 2, "batch_size": 64, "shuffle_buffer": 500, **(train or {})},
                "runtime": runtime or {},
            }
        },
    }


def train_command(folder: pathlib.Path, shards: str, params: dict, seed: int = 0, **extra: object) -> list[str]:
    """A command running workflow.train.trainer.train in a fresh process (strategies and policies are process-global),
    its outputs in `folder`, logging at INFO; `extra`: train()'s other arguments (runtime_settings, ...)."""
    import json

    arguments = {
        "shards_dir": shards,
        "model_path": str(folder / "model.keras"),
        "history_path": str(folder / "history.json"),
        "info_path": str(folder / "train.json"),
        "tensorboard_dir": str(folder / "tensorboard"),
        "checkpoint_root": str(folder / "checkpoints"),
        "params": params,
        "seed": seed,
        **extra,
    }
    program = (
        "import json, logging; logging.basicConfig(level=logging.INFO); from workflow.train.trainer import train; "
        f"train(**json.loads({json.dumps(arguments)!r}))"
    )
    return [sys.executable, "-c", program]


def require_tool(name: str, install_hint: str) -> str:
    """Path of an executable, or a failure that says how to install it (never a silent skip)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is needed by this test and is not on PATH: {install_hint}")
    return path


REPO = pathlib.Path(__file__).resolve().parent.parent
# The four original MNIST files (shared/datasets/README.md); TF_LIFECYCLE_SHARED moves the folder.
SHARED_MNIST = pathlib.Path(os.environ.get("TF_LIFECYCLE_SHARED", REPO.parent / "shared")) / "datasets" / "mnist"
# Every rule that runs a step (all but `all`), in DAG order.
STEP_RULES = (
    "tfjs_env",
    "node_env",
    "download",
    "tfrecord",
    "train",
    "evaluate",
    "manifest",
    "export",
    "tflite",
    "tfjs",
    "parity",
    "gate",
    "publish",
    "report",
)


# Headless Chromium on a machine with no network (the flags keep it from calling home).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


def require_mnist() -> pathlib.Path:
    """The shared MNIST folder; the test fails, saying where the files go, when they are absent."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"the four MNIST files are expected in {SHARED_MNIST} (see shared/datasets/README.md)")
    return SHARED_MNIST


COPIED = ("Snakefile", "rules", "scripts", "workflow", "configs", "envs", "docs", "slurm", "examples")


def copy_repository(folder: pathlib.Path) -> pathlib.Path:
    """Copy what the workflow needs to `folder`, so a test may edit it without touching the checkout."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
        else:
            shutil.copy(source, folder / name)
    return folder


@functools.cache
def without_slurm_client() -> str:
    """A folder with an `scontrol` that fails at once, to put first on PATH.

    snakemake-executor-plugin-slurm runs `scontrol show config` when Snakemake imports it, at every
    start; once tests/slurm/cluster.sh has installed Slurm and stopped its controller, that call
    waits ~9 s for a controller. Runs that do not use Slurm skip the wait (the plugin then assumes
    its defaults, as on a machine without Slurm).
    """
    folder = pathlib.Path(tempfile.mkdtemp(prefix="no-slurm-"))
    (folder / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (folder / "scontrol").chmod(0o755)
    return str(folder)


def snakemake(
    folder: pathlib.Path, *args: str, timeout: int = 1500, env: dict[str, str] | None = None, slurm: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run snakemake in `folder`; `slurm`: with the real Slurm client (runs that submit to the test cluster)."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(folder)}
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not slurm:
        env["PATH"] = f"{without_slurm_client()}{os.pathsep}{env['PATH']}"
    command = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def planned_jobs(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """Rule -> job count from a dry run's "Job stats" table ({} when nothing is to be done)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)}
