# The reproduction tables and figures over every experiment and seed, flagged for `snakemake --report`.


report: "../docs/report/workflow.rst"


rule report:
    input:
        runs=[path for exp, seed in cfg.runs(CONFIG) for path in run_outputs(exp, seed)],
        train=[f"{RUN.format(exp=exp, seed=seed)}/{name}" for exp, seed in cfg.runs(CONFIG) for name in ("train.json", "history.json")],
        code=code("workflow.report"),
    output:
        markdown=f"{RESULTS}/report/reproduction.md",
        csv=f"{RESULTS}/report/reproduction.csv",
        html=report(f"{RESULTS}/report/reproduction.html", category="Reproduction", caption="../docs/report/table.rst"),
        figures=report(
            directory(f"{RESULTS}/report/figures"),
            patterns=["{name}.png"],
            category="Figures",
            caption="../docs/report/figures.rst",
        ),
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
