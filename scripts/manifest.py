"""Step `manifest`: what produced one run, for reproductions (rules/evaluate.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.evaluate.manifest import write_manifest

write_manifest(
    train_path=snakemake.input.train,
    metrics_path=snakemake.input.metrics,
    prepared_path=snakemake.input.prepared,
    shards_dir=snakemake.input.shards,
    manifest_path=snakemake.output[0],
    params=snakemake.params.config,
    trained_with=snakemake.params.trained_with,
    experiment=snakemake.wildcards.exp,
    seed=int(snakemake.wildcards.seed),
)
