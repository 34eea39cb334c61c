# Training: one job per experiment and seed, under the configured tf.distribute strategy.


rule train:
    input:
        shards=shards_of,
        code=code("workflow.launch", "workflow.train"),
    output:
        model=f"{RUN}/model.keras",
        history=f"{RUN}/history.json",
        info=f"{RUN}/train.json",
        tensorboard=directory(f"{RUN}/tensorboard"),
    params:
        config=lambda wildcards: cfg.train_params(CONFIG, wildcards.exp),
        checkpoints=f"{RESULTS}/checkpoints/{{exp}}/seed{{seed}}",
    threads: 2
    resources:
        # From the experiment's `resources.train` (workflow/config.py train_resources): a change
        # here moves the job, it does not retrain.
        slurm_partition=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["slurm_partition"],
        gpu=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["gpu"],
        gpu_model=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["gpu_model"],
        cpus_per_task=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["cpus_per_task"],
        mem_mb=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["mem_mb"],
        runtime=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["runtime"],
        nodes=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["nodes"],
        tasks=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["tasks"],
        mpi=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["mpi"],
        slurm_extra=lambda wildcards: cfg.train_resources(CONFIG, wildcards.exp)["slurm_extra"],
    conda:
        "../envs/main.yaml"
    log:
        log_path("train", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("train", "{exp}/seed{seed}")
    script:
        "../scripts/train.py"
