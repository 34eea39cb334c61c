"""Step `download`: tfds download_and_prepare of one dataset (rules/data.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.data.download import prepare

prepare(
    tfds_name=snakemake.params.dataset["tfds_name"],
    manual_dir=snakemake.params.dataset["manual_dir"],
    data_dir=snakemake.params.data_dir,
    manifest=snakemake.output[0],
    csv=snakemake.params.dataset["csv"],
    code=snakemake.params.dataset["code"],
    dataset=snakemake.wildcards.dataset,
)
