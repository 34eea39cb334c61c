"""Step `tflite`: one TFLite variant of the SavedModel (rules/convert.smk)."""

from workflow.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.convert import convert_tflite

convert_tflite(
    saved_model_dir=snakemake.input.saved_model,
    shards_dir=snakemake.input.shards,
    output_path=snakemake.output[0],
    variant=snakemake.params.config["variant"],
    representative_examples=snakemake.params.config.get("representative_examples", 0),
    allow_flex=snakemake.params.config["allow_flex"],
)
