"""Step `train`: one experiment and seed, one process or one per worker (rules/train.smk)."""

from workflow.logs import log_to_file

log_to_file(snakemake.log[0])

from workflow.launch import run_training

run_training(
    launcher=snakemake.resources.get("mpi", ""),  # absent for one worker (workflow/config.py)
    cpus_per_task=int(snakemake.resources.cpus_per_task),
    shards_dir=snakemake.input.shards,
    init_model_path=(snakemake.input.init_model or [None])[0],  # model.init_from, when set
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    info_path=snakemake.output.info,
    tensorboard_dir=snakemake.output.tensorboard,
    checkpoint_root=snakemake.params.checkpoints,
    params=snakemake.params.config,
    seed=int(snakemake.wildcards.seed),
)
