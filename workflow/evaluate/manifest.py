"""The run manifest: everything needed to say what produced a result and to redo it.

manifest.json gathers the resolved config of the experiment and its dataset, the git commit and
package versions the training ran with, the tfds dataset name, version and raw-file sha256, the
shards' sha256, the Slurm job ids when there are any, and the headline metrics.
"""

from __future__ import annotations

import json
import os
from typing import Any

from workflow.data.shards import read_spec
from workflow.infra.atomic import read_json, write_json


def write_manifest(
    *, train_path: str, metrics_path: str, prepared_path: str, shards_dir: str, manifest_path: str,
    params: dict[str, Any], trained_with: dict[str, Any], experiment: str, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Assemble manifest.json from the outputs of download, tfrecord, train and evaluate.

    `trained_with` is the config's training slice (config.train_params); the model must have been
    trained with exactly that, or the manifest would describe a model its config did not make.
    """
    train, metrics, prepared = read_json(train_path), read_json(metrics_path), read_json(prepared_path)
    check_trained_with(train_path, train["params"], trained_with)
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
                split: [{"file": shard.file, "sha256": shard.sha256} for shard in entry.shards]
                for split, entry in spec.splits.items()
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


def check_trained_with(train_path: str, recorded: dict[str, Any], configured: dict[str, Any]) -> None:
    """Refuse to describe a model that was trained with other settings than the config's."""
    configured = json.loads(json.dumps(configured))  # as train.json holds it (tuples as lists)
    if recorded == configured:
        return
    differing = sorted(_differences(recorded, configured, ""))
    raise ValueError(
        f"{train_path}: the model was trained with other settings than this config's "
        f"({', '.join(differing[:8])}{', ...' if len(differing) > 8 else ''}); rerun its train step "
        "(snakemake -R the model.keras) instead of writing a manifest that would misdescribe it"
    )


def _differences(recorded: Any, configured: Any, where: str) -> list[str]:
    """Key paths at which two JSON values differ, each with both values."""
    if isinstance(recorded, dict) and isinstance(configured, dict):
        keys = sorted(set(recorded) | set(configured))
        return [item for key in keys for item in _differences(recorded.get(key), configured.get(key), f"{where}.{key}")]
    if recorded != configured:
        return [f"{where.lstrip('.')}: trained {recorded!r}, configured {configured!r}"]
    return []
