# The reproduction table over every experiment and seed.


rule report:
    input:
        runs=[path for exp, seed in cfg.runs(CONFIG) for path in run_outputs(exp, seed)],
        train=[f"{RUN.format(exp=exp, seed=seed)}/train.json" for exp, seed in cfg.runs(CONFIG)],
        code=code("workflow.report"),
    output:
        directory(f"{RESULTS}/report"),
    params:
        config=cfg.report_params(CONFIG),
        run_dirs=[RUN.format(exp=exp, seed=seed) for exp, seed in cfg.runs(CONFIG)],
    conda:
        "../envs/main.yaml"
    log:
        log_path("report", "report"),
    benchmark:
        benchmark_path("report", "report")
    script:
        "../scripts/report.py"
