"""Step `publish`: a blessed run into results/deploy/<experiment>/ (rules/deploy.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.deploy.formats import BY_NAME
from workflow.deploy.gate import publish

publish(
    verdict_path=snakemake.input.verdict,
    saved_model_dir=snakemake.input.saved_model,
    # Each format's folder, by its name (`in snakemake.input` would test the paths, not the names).
    format_dirs={name: path for name, path in snakemake.input.items() if name in BY_NAME},
    output_dir=snakemake.output[0],
    model_name=snakemake.params.config["model_name"],
    version=snakemake.params.config["version"],
    run=f"{snakemake.wildcards.exp}/seed{snakemake.params.config['seed']}",
)
