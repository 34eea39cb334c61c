"""Step `node_env`: node_modules with @tensorflow/tfjs, once per machine (rules/envs.smk)."""

import os

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.infra.envs import build_node_env

build_node_env(package_dir=os.path.dirname(snakemake.input.package), manifest=snakemake.output[0])
