"""Step `tfjs`: SavedModel -> TF.js graph model with the pinned converter (rules/convert.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.deploy.tfjs import convert_tfjs

convert_tfjs(
    saved_model_dir=snakemake.input.saved_model,
    env_manifest=snakemake.input.env,
    output_dir=snakemake.output[0],
    node_manifest=snakemake.input.node_env,
    shards_dir=snakemake.input.shards,
)
