# Training: one job per experiment and seed, under the configured tf.distribute strategy.


rule train:
    input:
        shards=shards_of,
        code=code("workflow.train"),
    output:
        model=f"{RUN}/model.keras",
        history=f"{RUN}/history.json",
        info=f"{RUN}/train.json",
        tensorboard=directory(f"{RUN}/tensorboard"),
    params:
        config=lambda wildcards: cfg.train_params(CONFIG, wildcards.exp),
        checkpoints=f"{RESULTS}/checkpoints/{{exp}}/seed{{seed}}",
    threads: 2
    conda:
        "../envs/main.yaml"
    log:
        log_path("train", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("train", "{exp}/seed{seed}")
    script:
        "../scripts/train.py"
