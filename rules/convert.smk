# Conversions of the SavedModel, one rule per deployment format (workflow/deploy/formats.py), and their
# numerical parity check. A format's rule writes <run>/<format>/, and runs only for an experiment that
# converts to it (the DAG's targets and parity's inputs come from workflow/deploy/formats.py).


rule tflite:
    input:
        saved_model=f"{RUN}/saved_model",
        shards=shards_of,
    output:
        directory(f"{RUN}/tflite"),  # <variant>.tflite for each of convert.tflite.variants
    params:
        code=code("workflow.deploy.tflite"),
        config=lambda wildcards: cfg.format_params(CONFIG, wildcards.exp, "tflite"),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("tflite"),
    log:
        log_path("tflite", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("tflite", "{exp}/seed{seed}")
    script:
        "../scripts/tflite.py"


rule tfjs:
    input:
        saved_model=f"{RUN}/saved_model",
        env=f"{RESULTS}/envs/tfjs.json",
        node_env=f"{RESULTS}/envs/node.json",  # the pinned tf.min.js for the demo page
        shards=shards_of,  # the demo page's test images
        train=f"{RUN}/train.json",  # the demo page's heading names the model (workflow/deploy/tfjs.py describe_run)
    output:
        directory(f"{RUN}/tfjs"),
    params:
        code=code("workflow.deploy.tfjs", extra=("deploy/js/demo.html",)),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("tfjs"),
    log:
        log_path("tfjs", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("tfjs", "{exp}/seed{seed}")
    script:
        "../scripts/tfjs.py"


rule parity:
    input:
        unpack(parity_inputs),
        saved_model=f"{RUN}/saved_model",
        shards=shards_of,
    output:
        f"{RUN}/parity.json",
    params:
        code=code("workflow.deploy.parity", *RUNTIME_MODULES, extra=RUNTIME_FILES),
        config=lambda wildcards: cfg.parity_params(CONFIG, wildcards.exp),
        plan=lambda wildcards: cfg.conversion_message(CONFIG, wildcards.exp),
    message:
        "{params.plan}"
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("parity"),
    log:
        log_path("parity", "{exp}/seed{seed}"),
    benchmark:
        benchmark_path("parity", "{exp}/seed{seed}")
    script:
        "../scripts/parity.py"
