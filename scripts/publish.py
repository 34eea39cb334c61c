"""Step `publish`: a blessed run into results/deploy/<experiment>/ (rules/deploy.smk)."""

from pathlib import Path

from workflow.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.gate import publish

publish(
    verdict_path=snakemake.input.verdict,
    saved_model_dir=snakemake.input.saved_model,
    tflite_paths=sorted(str(path) for path in Path(snakemake.input.tflite).glob("*.tflite")),
    tfjs_dir=snakemake.input.get("tfjs"),
    output_dir=snakemake.output[0],
    model_name=snakemake.params.config["model_name"],
    version=snakemake.params.config["version"],
    run=f"{snakemake.wildcards.exp}/seed{snakemake.params.config['seed']}",
)
