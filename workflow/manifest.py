"""The run manifest: everything needed to say what produced a result and to redo it.

manifest.json gathers the resolved config of the experiment and its dataset, the git commit and
package versions the training ran with, the tfds dataset name, version and raw-file sha256, the
shards' sha256, the Slurm job ids when there are any, and the headline metrics.
"""

from __future__ import annotations

import os
from typing import Any

from workflow.atomic import read_json, write_json
from workflow.shards import read_spec


def write_manifest(
    *, train_path: str, metrics_path: str, prepared_path: str, shards_dir: str, manifest_path: str,
    params: dict[str, Any], experiment: str, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Assemble manifest.json from the outputs of download, tfrecord, train and evaluate."""
    train, metrics, prepared = read_json(train_path), read_json(metrics_path), read_json(prepared_path)
    spec = read_spec(shards_dir)
    manifest = {
        "experiment": experiment,
        "seed": seed,
        "config": params,
        "code": train["code"],
        "versions": train["versions"],
        "host": train["host"],
        "strategy": {"name": train["strategy"], "replicas": train["replicas"]},
        "dataset": {
            "name": prepared["name"],
            "version": prepared["version"],
            "splits": prepared["splits"],
            "raw_files": prepared["raw_files"],
            "shards": {
                split: [{"file": shard["file"], "sha256": shard["sha256"]} for shard in entry["shards"]]
                for split, entry in spec["splits"].items()
            },
        },
        "slurm": {"train_job_id": train["host"].get("slurm_job_id"), "manifest_job_id": os.environ.get("SLURM_JOB_ID")},
        # Set by Lmod and Tcl modules when the step ran with `--sdm env-modules`.
        "modules": os.environ.get("LOADEDMODULES") or None,
        "results": {
            **{key: metrics[key] for key in ("accuracy", "error", "rmse", "mae", "r2") if key in metrics},
            "verdict": metrics["verdict"],
        },
    }
    write_json(manifest_path, manifest)
    return manifest
