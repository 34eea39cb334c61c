"""Step `pretrained`: a TF Hub / Kaggle Models handle fetched into a SavedModel folder (rules/train.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.train.hub import fetch

fetch(handle=snakemake.params.handle, output_dir=snakemake.output[0])
