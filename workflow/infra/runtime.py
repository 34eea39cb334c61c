"""Facts about the process that ran a step: versions, host, Slurm job, for train.json and manifests."""

from __future__ import annotations

import os
import pathlib
import platform
import socket
import subprocess
import sys
import urllib.parse
from importlib import metadata
from typing import Any

PACKAGES = ("tensorflow", "keras", "tensorflow-datasets", "numpy", "ai-edge-litert")


def versions() -> dict[str, str]:
    """Python and the installed versions of the packages the steps rely on."""
    found = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def host() -> dict[str, Any]:
    """Host name, CPU count, platform and the Slurm job id when there is one."""
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def git_commit() -> dict[str, Any]:
    """The commit of the code that runs, and whether the work tree had changes (None outside git)."""
    repo = pathlib.Path(__file__).resolve().parent.parent.parent

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def reachable(url: str, timeout: float) -> bool:
    """Whether a TCP connection to the URL's host and port opens within `timeout` seconds."""
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
