"""Step `report`: the reproduction tables and figures of all experiments and seeds (rules/report.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.evaluate.report import write_report

write_report(
    run_dirs=snakemake.params.run_dirs,
    table_paths={"markdown": snakemake.output.markdown, "csv": snakemake.output.csv, "html": snakemake.output.html},
    figures_dir=snakemake.output.figures,
    title=snakemake.params.config["title"],
    experiments=snakemake.params.config["experiments"],
    sweeps=snakemake.params.config["sweeps"],
)
