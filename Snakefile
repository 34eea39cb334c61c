# tf-lifecycle: the whole TensorFlow 2 lifecycle as one Snakemake DAG.
# Run the embedded default:  snakemake --cores all
# A paper alone:             snakemake --configfile configs/papers/X.yaml --replace-workflow-config --cores all
# The plan:                  snakemake -n   |   snakemake -n -q rules   |   snakemake --rulegraph | dot -Tsvg
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# Our package is called `workflow`, like Snakemake's global: import its modules by full name only.
# Jobs import it from the environment (make installs it editable); the DAG also builds without that.
sys.path.insert(0, workflow.basedir)

from workflow.config import load_config


configfile: os.path.join(workflow.basedir, "configs", "default.yaml")


CONFIG = load_config(config)


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


rule all:
    input:
        final_outputs(),
    default_target: True
