"""Step `export`: SavedModel with a uint8 serving signature, verified (rules/export.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.deploy.export import export

export(
    model_path=snakemake.input.model,
    shards_dir=snakemake.input.shards,
    saved_model_dir=snakemake.output.saved_model,
    info_path=snakemake.output.info,
)
