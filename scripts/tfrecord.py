"""Step `tfrecord`: prepared tfds dataset -> TFRecord shards and spec.json (rules/data.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.data.tfrecord import convert

convert(
    manifest_path=snakemake.input.manifest,
    output_dir=snakemake.output[0],
    shards=snakemake.params.sharding["shards"],
    validation_percent=snakemake.params.sharding["validation_percent"],
)
