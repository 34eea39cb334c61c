# SavedModel export with preprocessing inside and a named serving signature.


rule export:
    input:
        model=f"{RUN}/model.keras",
        shards=shards_of,
    output:
        saved_model=directory(f"{RUN}/saved_model"),
        info=f"{RUN}/export.json",
    params:
        code=code("workflow.deploy.export"),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("export"),
    log:
        log_path("export", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("export", "{exp}/seed{seed}")
    script:
        "../scripts/export.py"
