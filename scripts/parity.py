"""Step `parity`: the test split through the SavedModel and every converted model (rules/convert.smk)."""

from workflow.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.parity import measure_parity

measure_parity(
    saved_model_dir=snakemake.input.saved_model,
    formats=dict(snakemake.input.items()),  # each format's folder, and what its runtime needs (workflow/formats.py)
    shards_dir=snakemake.input.shards,
    parity_path=snakemake.output[0],
    batch_size=snakemake.params.config["batch_size"],
    skipped=snakemake.params.config["skipped"],
)
