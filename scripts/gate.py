"""Step `gate`: bless one run or say why not (rules/deploy.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.deploy.gate import gate

gate(
    parity_path=snakemake.input.parity,
    metrics_path=snakemake.input.metrics,
    verdict_path=snakemake.output[0],
    budgets=snakemake.params.config["budgets"],
    publish_anyway=snakemake.params.config["publish_anyway"],
    reason=snakemake.params.config["reason"],
)
