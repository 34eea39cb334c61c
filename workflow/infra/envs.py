"""Build the side environments some steps need, once per machine, keyed by their pinned files.

- `tfjs`: a Python virtual environment with the `tensorflowjs` converter, whose pins (TensorFlow
  2.19, tensorflow-decision-forests) clash with the main environment; from envs/tfjs.txt.
- `node`: node_modules with `@tensorflow/tfjs` for running graph models in Node.js; from
  envs/node/package-lock.json via `npm ci`.

Each lives in `<cache>/<kind>-<sha256 of its pinned files>`; the cache is $TF_LIFECYCLE_CACHE or
~/.cache/tf-lifecycle. A file lock serialises concurrent builders; a `.complete` marker is written
last, so a half-built environment (killed build) is removed and rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from workflow.infra.atomic import write_json

log = logging.getLogger(__name__)
MARKER = ".complete"


def cache_root() -> pathlib.Path:
    """Where environments are kept: $TF_LIFECYCLE_CACHE, else ~/.cache/tf-lifecycle."""
    configured = os.environ.get("TF_LIFECYCLE_CACHE")
    return pathlib.Path(configured) if configured else pathlib.Path.home() / ".cache" / "tf-lifecycle"


def pinned_key(files: Sequence[str | os.PathLike[str]]) -> str:
    """sha256 (16 hex digits) of the pinned files' contents and of this Python's version."""
    digest = hashlib.sha256(sys.version.split()[0].encode())
    for path in files:
        digest.update(pathlib.Path(path).read_bytes())
    return digest.hexdigest()[:16]


def build_python_env(*, requirements: str, manifest: str, kind: str = "tfjs") -> dict[str, Any]:
    """A venv with exactly the pinned requirements; the manifest gives its python and bin folder."""
    target = cache_root() / f"{kind}-{pinned_key([requirements])}"

    def build(folder: pathlib.Path) -> None:
        _run([sys.executable, "-m", "venv", str(folder)])
        pip = [str(folder / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "install", "--quiet", "--no-deps", "-r", str(pathlib.Path(requirements).resolve())])
        _run([*pip, "check"])

    built = _ensure(target, build)
    info = {
        "kind": kind,
        "path": str(target),
        "python": str(target / "bin" / "python"),
        "bin": str(target / "bin"),
        "pinned": requirements,
        **built,
    }
    write_json(manifest, info)
    return info


def build_node_env(*, package_dir: str, manifest: str) -> dict[str, Any]:
    """node_modules from package.json and package-lock.json (`npm ci`); the manifest gives NODE_PATH."""
    package_dir_path = pathlib.Path(package_dir)
    files = [package_dir_path / "package.json", package_dir_path / "package-lock.json"]
    target = cache_root() / f"node-{pinned_key(files)}"
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are needed for the TF.js checks: apt-get install nodejs npm")

    def build(folder: pathlib.Path) -> None:
        folder.mkdir(parents=True)
        for path in files:
            shutil.copy(path, folder / path.name)
        _run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=folder)

    built = _ensure(target, build)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    info = {
        "kind": "node",
        "path": str(target),
        "node": node,
        "node_version": version,
        "node_path": str(target / "node_modules"),
        "pinned": str(package_dir),
        **built,
    }
    write_json(manifest, info)
    return info


def _ensure(target: pathlib.Path, build: Any) -> dict[str, Any]:
    """Build `target` with `build(target)` unless a complete copy exists; return what happened."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock")):
        if (target / MARKER).exists():
            log.info("environment %s is already built", target)
            return {"built_now": False, "build_seconds": 0.0}
        if target.exists():
            log.warning("removing incomplete environment %s", target)
            shutil.rmtree(target)
        started = time.monotonic()
        log.info("building environment %s", target)
        try:
            build(target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        (target / MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
        seconds = round(time.monotonic() - started, 1)
        log.info("built %s in %.1f s", target, seconds)
        return {"built_now": True, "build_seconds": seconds}


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], cwd: pathlib.Path | None = None) -> None:
    log.info("running %s", " ".join(command))
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
