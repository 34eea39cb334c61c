"""Step `tflite`: every TFLite variant of the SavedModel, in one folder (rules/convert.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.deploy.tflite import convert_tflite_variants

convert_tflite_variants(
    saved_model_dir=snakemake.input.saved_model,
    shards_dir=snakemake.input.shards,
    output_dir=snakemake.output[0],
    variants=snakemake.params.config["variants"],
    allow_flex=snakemake.params.config["allow_flex"],
)
