"""Step `hparams`: TensorBoard's HParams sessions of one sweep's runs (rules/report.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.evaluate.hparams import write_sweep_hparams

write_sweep_hparams(
    sweep=snakemake.wildcards.sweep,
    entry=snakemake.params.sweep,
    run_dirs=snakemake.params.run_dirs,
    output=snakemake.output[0],
)
