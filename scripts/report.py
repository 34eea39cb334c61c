"""Step `report`: the reproduction table of all experiments and seeds (rules/report.smk)."""

from workflow.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.report import write_report

write_report(
    run_dirs=snakemake.params.run_dirs,
    output_dir=snakemake.output[0],
    title=snakemake.params.config["title"],
    experiments=snakemake.params.config["experiments"],
)
