"""Fetch a pretrained model named by a TF Hub / Kaggle Models handle into a local SavedModel folder.

`model.init_from.hub` takes:
- a TF Hub or Kaggle Models URL (https://tfhub.dev/..., https://www.kaggle.com/models/.../tensorFlow2/...):
  fetched in TF Hub's compressed format (`?tf-hub-format=compressed`, a .tar.gz of the SavedModel);
- any other http(s) URL of a .tar.gz of a SavedModel;
- a local SavedModel folder or .tar.gz (what a cluster without internet uses, and what the tests use).

The `pretrained` step is a localrule (login nodes have internet; compute nodes often not) and fails
within seconds, naming the host, when the handle cannot be reached. Layers are then copied by Keras
variable path (workflow/train/finetune.py): a model exported by Keras keeps its layer names; the variables
of a TF1-style Hub module match nothing, which train.json then says.
No TensorFlow import: the step only downloads, unpacks and checks files.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from typing import Any

from workflow.deploy.savedmodel import check_saved_model
from workflow.infra.atomic import atomic_path
from workflow.infra.runtime import reachable

log = logging.getLogger(__name__)
HUB_HOSTS = ("tfhub.dev", "www.kaggle.com", "kaggle.com")


def handle_key(handle: str) -> str:
    """The folder name of a fetched handle under results/pretrained/: a digest of the handle."""
    return hashlib.sha256(handle.encode()).hexdigest()[:16]


def is_url(handle: str) -> bool:
    return urllib.parse.urlparse(handle).scheme in ("http", "https")


def download_url(handle: str) -> str:
    """The URL to fetch: TF Hub's compressed format for tfhub.dev and Kaggle Models handles."""
    parsed = urllib.parse.urlparse(handle)
    if parsed.hostname in HUB_HOSTS and "tf-hub-format" not in parsed.query:
        return handle + ("&" if parsed.query else "?") + "tf-hub-format=compressed"
    return handle


def fetch(*, handle: str, output_dir: str, timeout: float = 60.0) -> dict[str, Any]:
    """Put the SavedModel of `handle` into `output_dir` (atomically); describe what was fetched."""
    with tempfile.TemporaryDirectory(prefix="pretrained-") as scratch:
        if is_url(handle):
            archive = pathlib.Path(scratch) / "model.tar.gz"
            url = download_url(handle)
            if not reachable(url, timeout=3.0):
                host = urllib.parse.urlparse(url).hostname
                raise ConnectionError(
                    f"model.init_from.hub: {handle}: cannot reach {host} (no connection within 3 s). Fetch it where "
                    "there is internet (the pretrained step is a localrule), or download and unpack it and give "
                    "its folder instead"
                )
            log.info("downloading %s", url)
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
            source = archive
        else:
            source = pathlib.Path(handle)
            if not source.exists():
                raise FileNotFoundError(
                    f"model.init_from.hub: {handle} is neither a URL nor an existing file or folder"
                )
            if source.is_dir():  # before copying: a random folder (/etc) fails here by name, not in shutil
                check_saved_model(source, f"model.init_from.hub: {handle} must be a SavedModel folder")
        with atomic_path(output_dir) as temporary:
            if source.is_dir():
                shutil.copytree(source, temporary)
            else:
                _extract(source, temporary, handle)
            check_saved_model(temporary, f"model.init_from.hub: {handle} must hold a SavedModel at its top")
    log.info("%s -> %s", handle, output_dir)
    return {"handle": handle, "folder": output_dir}


def _extract(archive: pathlib.Path, folder: pathlib.Path, handle: str) -> None:
    """Unpack a .tar.gz, refusing members that would land outside `folder`."""
    if not tarfile.is_tarfile(archive):
        raise ValueError(f"model.init_from.hub: {handle} is not a .tar.gz of a SavedModel")
    folder.mkdir(parents=True)
    with tarfile.open(archive) as bundle:
        bundle.extractall(folder, filter="data")  # "data": no absolute paths, links out or devices
