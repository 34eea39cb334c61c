"""Step `train`: one experiment and seed, one process or one per worker (rules/train.smk)."""

from workflow.infra.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.config.settings import train_runtime
from workflow.train.launch import run_training

run_training(
    launcher=snakemake.resources.get("mpi", ""),  # absent for one worker (workflow/config/settings.py)
    cpus_per_task=int(snakemake.resources.cpus_per_task),
    shards_dir=snakemake.input.shards,
    init_model_path=(snakemake.input.init_model or [None])[0],  # model.init_from, when set
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    info_path=snakemake.output.info,
    tensorboard_dir=snakemake.output.tensorboard,
    checkpoint_root=snakemake.params.checkpoints,
    params=snakemake.params.config,
    # Not a param: how training runs must not rerun it. The Snakefile hands jobs the validated config.
    runtime_settings=train_runtime(snakemake.config, snakemake.wildcards.exp),
    seed=int(snakemake.wildcards.seed),
)
