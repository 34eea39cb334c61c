# Side environments, built once per machine in a cache keyed by their pinned files (workflow/infra/envs.py).
# Localrules: compute nodes often have no internet.


localrules:
    tfjs_env,
    node_env,


rule tfjs_env:
    input:
        pinned=repo_path("envs/tfjs.txt"),
    output:
        f"{RESULTS}/envs/tfjs.json",
    params:
        code=code("workflow.infra.envs"),
    conda:
        "../envs/main.yaml"
    log:
        log_path("tfjs_env", "tfjs"),
    benchmark:
        benchmark_path("tfjs_env", "tfjs")
    script:
        "../scripts/build_tfjs_env.py"


rule node_env:
    input:
        package=repo_path("envs/node/package.json"),
        lock=repo_path("envs/node/package-lock.json"),
    output:
        f"{RESULTS}/envs/node.json",
    params:
        code=code("workflow.infra.envs"),
    conda:
        "../envs/main.yaml"
    log:
        log_path("node_env", "node"),
    benchmark:
        benchmark_path("node_env", "node")
    script:
        "../scripts/build_node_env.py"
