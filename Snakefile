# tf-lifecycle: the whole TensorFlow 2 lifecycle as one Snakemake DAG.
# Run the embedded default:  snakemake --cores all
# Your config (alone):       snakemake --configfile my.yaml --cores all
# Override one key:          snakemake --config 'experiments={digits_mlp: {train: {epochs: 3}}}'
# The plan:                  snakemake -n   |   snakemake -n -q rules   |   snakemake --rulegraph | dot -Tsvg
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# Our package is called `workflow`, like Snakemake's global: import its modules by full name only.
# Jobs import it from the environment (make installs it editable); the DAG also builds without that.
sys.path.insert(0, workflow.basedir)

from workflow.config.settings import check_config_files, load_config
from workflow.infra.logs import record_interrupts, why_the_run_stopped
from workflow.infra.slurm_jobs import explain_account_guess

# The head process's messages: a Ctrl-C is reported as an interruption, not a failure (`onerror`
# below), and the Slurm plugin's broken account guess is replaced by what it means.
record_interrupts()
explain_account_guess()


# A --configfile is the whole config; the embedded default applies only when none is given (so
# its digits experiments never join a paper's plan). `--config` overrides go on top of either.
if not workflow.overwrite_configfiles:
    workflow.configfile(os.path.join(workflow.basedir, "configs", "default.yaml"))

# Snakemake has loaded the config files with its own loader (YTE, Python tags, the last of two equal
# keys); read them again as plain data and refuse what it should not have accepted (workflow/config/plainyaml.py).
check_config_files(workflow.configfiles)
# `--config` values arrive as strings below the top level; the schema types them (workflow/config/settings.py).
CONFIG = load_config(config, command_line=workflow.config_settings.config)
# Jobs read the settings that must not rerun a step (an experiment's `runtime`) from this config,
# validated and with its defaults, not from params (Snakemake reruns a job whose params change).
config.update(CONFIG)


include: "rules/common.smk"
include: "rules/envs.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/export.smk"
include: "rules/convert.smk"
include: "rules/deploy.smk"
include: "rules/report.smk"


localrules:
    all,


onerror:
    stopped = why_the_run_stopped(getattr(workflow, "scheduler", None))
    if stopped:
        print(stopped, file=sys.stderr)


rule all:
    input:
        final_outputs(),
    default_target: True
