"""Step `evaluate`: test metrics and the verdict against the target (rules/evaluate.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.evaluate.metrics import evaluate

evaluate(
    model_path=snakemake.input.model,
    shards_dir=snakemake.input.shards,
    metrics_path=snakemake.output[0],
    batch_size=snakemake.params.config["batch_size"],
    target=snakemake.params.config["target"],
)
