# Dataset download (tfds download_and_prepare) and conversion to TFRecord shards.


localrules:
    download,


rule download:
    input:
        lambda wildcards: cfg.csv_file(CONFIG, wildcards.dataset),
    output:
        f"{RESULTS}/datasets/{{dataset}}/prepared.json",
    params:
        code=code("workflow.data.download"),
        # The user's own tfds builder (datasets.<key>.code) and what it imports.
        user_code=lambda wildcards: cfg.dataset_code(CONFIG, wildcards.dataset),
        dataset=lambda wildcards: cfg.download_params(CONFIG, wildcards.dataset),
        data_dir=lambda wildcards: f"{RESULTS}/datasets/{wildcards.dataset}/tfds",
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("download"),
    log:
        log_path("download", "{dataset}"),
    benchmark:
        benchmark_path("download", "{dataset}")
    script:
        "../scripts/download.py"


rule tfrecord:
    input:
        manifest=f"{RESULTS}/datasets/{{dataset}}/prepared.json",
    output:
        directory(f"{RESULTS}/datasets/{{dataset}}/shards"),
    params:
        code=code("workflow.data.tfrecord"),
        sharding=lambda wildcards: cfg.tfrecord_params(CONFIG, wildcards.dataset),
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("tfrecord"),
    log:
        log_path("tfrecord", "{dataset}"),
    benchmark:
        benchmark_path("tfrecord", "{dataset}")
    script:
        "../scripts/tfrecord.py"
