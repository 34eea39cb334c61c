"""A bare Snakefile with the same jobs and edges as the project's DAG for a config, for comparison.

Every rule of the project appears with the same wildcards and the same inputs between steps, but
with `touch` as its shell command and none of the project's code inputs, params, resources, logs
or benchmark files: what Snakemake itself costs for that many jobs. dag_scale.py and
cached_rerun.py measure the project against it.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from workflow.config import settings as cfg  # noqa: E402

SNAKEFILE = """\
import yaml
PLAN = yaml.safe_load(open("plan.yaml"))
R = "results/runs/{exp}/seed{seed}"
wildcard_constraints:
    exp="[A-Za-z0-9][A-Za-z0-9_-]*",
    seed=r"\\d+",

def shards(w):
    return f"results/datasets/{PLAN['experiments'][w.exp]['dataset']}/shards"

def published(w):
    e = PLAN["experiments"][w.exp]
    run = R.format(exp=w.exp, seed=e["publish_seed"])
    return [f"{run}/deploy/verdict.json", f"{run}/saved_model", f"{run}/tflite"]

rule all:
    input: PLAN["targets"]
rule download:
    output: "results/datasets/{dataset}/prepared.json"
    shell: "mkdir -p $(dirname {output}) && touch {output}"
rule tfrecord:
    input: "results/datasets/{dataset}/prepared.json"
    output: directory("results/datasets/{dataset}/shards")
    shell: "mkdir -p {output}"
rule tfjs_env:
    output: "results/envs/tfjs.json"
    shell: "touch {output}"
rule node_env:
    output: "results/envs/node.json"
    shell: "touch {output}"
rule train:
    input: shards
    output: f"{R}/model.keras", f"{R}/history.json", f"{R}/train.json", directory(f"{R}/tensorboard")
    shell: "touch {output[0]} {output[1]} {output[2]} && mkdir -p {output[3]}"
rule evaluate:
    input: f"{R}/model.keras", shards
    output: f"{R}/metrics.json"
    shell: "touch {output}"
rule manifest:
    input: f"{R}/train.json", f"{R}/metrics.json", shards
    output: f"{R}/manifest.json"
    shell: "touch {output}"
rule export:
    input: f"{R}/model.keras", shards
    output: directory(f"{R}/saved_model"), f"{R}/export.json"
    shell: "mkdir -p {output[0]} && touch {output[1]}"
rule tflite:
    input: f"{R}/saved_model", shards
    output: directory(f"{R}/tflite")
    shell: "mkdir -p {output}"
rule tfjs:
    input: f"{R}/saved_model", "results/envs/tfjs.json", "results/envs/node.json", shards
    output: directory(f"{R}/tfjs")
    shell: "mkdir -p {output}"
rule parity:
    input: f"{R}/saved_model", f"{R}/tfjs", "results/envs/node.json", f"{R}/tflite", shards
    output: f"{R}/parity.json"
    shell: "touch {output}"
rule gate:
    input: f"{R}/parity.json", f"{R}/metrics.json"
    output: f"{R}/deploy/verdict.json"
    shell: "touch {output}"
rule publish:
    input: published
    output: directory("results/deploy/{exp}")
    shell: "mkdir -p {output}"
rule hparams:
    input: lambda w: PLAN["swept"][w.sweep]
    output: directory("results/runs/_hparams/{sweep}")
    shell: "mkdir -p {output}"
rule report:
    input: PLAN["reported"]
    output: "results/report/reproduction.md", directory("results/report/figures")
    shell: "touch {output[0]} && mkdir -p {output[1]}"
"""


def plan(config: dict[str, Any]) -> dict[str, Any]:
    """What the bare Snakefile needs of a resolved project config: experiments, targets, report inputs."""
    runs = cfg.runs(config)
    folder = "results/runs/{}/seed{}"
    experiments = {}
    for name, experiment in config["experiments"].items():
        if "tfjs" not in cfg.converted_models(config, name):
            raise ValueError(f"{name}: the bare mirror assumes the TF.js conversion is on (the default)")
        experiments[name] = {
            "dataset": experiment["dataset"],
            "publish_seed": cfg.publish_params(config, name)["seed"],
        }
    targets = [
        f"{folder.format(exp, seed)}/{name}"
        for exp, seed in runs
        for name in ("metrics.json", "manifest.json", "saved_model", "deploy/verdict.json")
    ]
    targets += [f"results/deploy/{exp}" for exp in experiments]
    targets += ["results/report/reproduction.md", "results/report/figures"]
    swept = {
        sweep: [f"{folder.format(exp, seed)}/{name}" for exp, seed in runs if exp in entry["points"]
                for name in ("metrics.json", "history.json")]
        for sweep, entry in config.get("sweeps", {}).items()
    }  # fmt: skip
    targets += [f"results/runs/_hparams/{sweep}" for sweep in swept]
    reported = [
        f"{folder.format(exp, seed)}/{name}"
        for exp, seed in runs
        for name in ("metrics.json", "parity.json", "train.json", "history.json")
    ]
    return {"experiments": experiments, "targets": targets, "reported": reported, "swept": swept}


def write(folder: pathlib.Path, config: dict[str, Any]) -> pathlib.Path:
    """Write the bare Snakefile and its plan.yaml into `folder`; return the Snakefile's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.yaml").write_text(yaml.safe_dump(plan(config)))
    snakefile = folder / "Snakefile"
    snakefile.write_text(SNAKEFILE)
    return snakefile
