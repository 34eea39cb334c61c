# Test-split metrics and the verdict against the paper target.


rule evaluate:
    input:
        model=f"{RUN}/model.keras",
        shards=shards_of,
    output:
        f"{RUN}/metrics.json",
    params:
        code=code("workflow.evaluate.metrics"),
        config=lambda wildcards: cfg.evaluate_params(CONFIG, wildcards.exp),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("evaluate"),
    log:
        log_path("evaluate", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("evaluate", "{exp}/seed{seed}")
    script:
        "../scripts/evaluate.py"


rule manifest:
    input:
        train=f"{RUN}/train.json",
        metrics=f"{RUN}/metrics.json",
        prepared=prepared_of,
        shards=shards_of,
    output:
        f"{RUN}/manifest.json",
    params:
        code=code("workflow.evaluate.manifest"),
        config=lambda wildcards: cfg.manifest_params(CONFIG, wildcards.exp),
        # What train.json must record: the manifest step refuses a model trained with other settings.
        trained_with=lambda wildcards: cfg.train_params(CONFIG, wildcards.exp),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("manifest"),
    log:
        log_path("manifest", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("manifest", "{exp}/seed{seed}")
    script:
        "../scripts/manifest.py"
