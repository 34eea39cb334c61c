"""Step `tfjs_env`: the TF.js converter's own Python environment, once per machine (rules/envs.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.infra.envs import build_python_env

build_python_env(requirements=snakemake.input.pinned, manifest=snakemake.output[0], kind="tfjs")
