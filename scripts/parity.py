"""Step `parity`: the test split through the SavedModel and every converted model (rules/convert.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.deploy.parity import measure_parity

measure_parity(
    saved_model_dir=snakemake.input.saved_model,
    # Each format's folder, and what its runtime needs (workflow/deploy/formats.py).
    formats=dict(snakemake.input.items()),
    shards_dir=snakemake.input.shards,
    parity_path=snakemake.output[0],
    batch_size=snakemake.params.config["batch_size"],
    skipped=snakemake.params.config["skipped"],
)
