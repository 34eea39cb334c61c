# Training: one job per experiment and seed, under the configured tf.distribute strategy.


# Fetching a hub handle needs internet, which login nodes have and compute nodes often not.
localrules:
    pretrained,


rule pretrained:
    input:
        lambda wildcards: cfg.hub_local_file(cfg.hub_handle(CONFIG, wildcards.key)),
    output:
        directory(f"{RESULTS}/pretrained/{{key}}"),
    params:
        code=code("workflow.train.hub"),
        handle=lambda wildcards: cfg.hub_handle(CONFIG, wildcards.key),
    conda:
        "../envs/main.yaml"
    log:
        log_path("pretrained", "{key}"),
    benchmark:
        benchmark_path("pretrained", "{key}")
    script:
        "../scripts/pretrained.py"


rule train:
    input:
        shards=shards_of,
        init_model=init_model_of,
    output:
        model=f"{RUN}/model.keras",
        history=f"{RUN}/history.json",
        info=f"{RUN}/train.json",
        tensorboard=directory(f"{RUN}/tensorboard"),
    params:
        code=code("workflow.train.launch", "workflow.train.trainer", *BUILDER_MODULES),
        # The user's own model builder and augmentation (model.code, train.augment.code) and what they import.
        user_code=lambda wildcards: cfg.train_code(CONFIG, wildcards.exp),
        config=lambda wildcards: cfg.train_params(CONFIG, wildcards.exp),
        checkpoints=f"{RESULTS}/checkpoints/{{exp}}/seed{{seed}}",
    threads: 2
    resources:
        # From the experiment's `resources.train` (workflow/config/settings.py train_resources): a change
        # here moves the job, it does not retrain.
        **train_job_resources(),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("train"),
    log:
        log_path("train", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("train", "{exp}/seed{seed}")
    script:
        "../scripts/train.py"
