# The deployment gate (bless a run or say why not) and publishing in the TF Serving layout.


rule gate:
    input:
        parity=f"{RUN}/parity.json",
        metrics=f"{RUN}/metrics.json",
    output:
        f"{RUN}/deploy/verdict.json",
    params:
        code=code("workflow.deploy.gate"),
        config=lambda wildcards: cfg.gate_params(CONFIG, wildcards.exp),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("gate"),
    log:
        log_path("gate", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("gate", "{exp}/seed{seed}")
    script:
        "../scripts/gate.py"


# A copy on the machine that runs snakemake: no cluster job for it.
localrules:
    publish,


rule publish:
    input:
        unpack(published_run),
    output:
        directory(f"{RESULTS}/deploy/{{exp}}"),
    params:
        code=code("workflow.deploy.gate"),
        config=lambda wildcards: cfg.publish_params(CONFIG, wildcards.exp),
    conda:
        "../envs/main.yaml"
    log:
        log_path("publish", "{exp}"),
    benchmark:
        benchmark_path("publish", "{exp}")
    script:
        "../scripts/publish.py"
