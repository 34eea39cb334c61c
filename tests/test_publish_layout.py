"""The published folder of a finished run holds what its readers load and nothing else."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.dag


def test_the_version_folder_holds_only_what_tf_serving_reads(finished):
    """No Snakemake marker (.snakemake_timestamp) in <model_name>/<version>/ or tfjs/, nor in publish.json's list."""
    deploy = finished / "results/deploy/digits_cnn"
    version = deploy / "digits_cnn" / "1"
    listing = sorted(path.relative_to(version).as_posix() for path in version.rglob("*"))
    published = json.loads((deploy / "publish.json").read_text())["files"]

    assert "saved_model.pb" in listing and "variables/variables.index" in listing, listing
    assert [name for name in listing if name.split("/")[-1].startswith(".")] == [], listing
    assert [name for name in published if "/." in f"/{name}"] == [], published
    # Snakemake's marker of the publish step's own output folder sits at the top, outside what TF Serving
    # (the version folder) and the TF.js page read; publish.json lists every other file there is.
    present = [path.relative_to(deploy).as_posix() for path in deploy.rglob("*") if path.is_file()]
    assert sorted(published) == sorted(set(present) - {"publish.json", ".snakemake_timestamp"})
