# The reproduction tables and figures over every experiment and seed, flagged for `snakemake --report`.


report: "../docs/report/workflow.rst"


REPORTED = ("metrics.json", "parity.json", "train.json", "history.json")


rule report:
    input:
        # Not deploy/verdict.json: a budget change reruns the gate and publish, not the report.
        runs=[f"{RUN.format(exp=exp, seed=seed)}/{name}" for exp, seed in cfg.runs(CONFIG) for name in REPORTED],
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
        code=code("workflow.evaluate.report"),
        config=cfg.report_params(CONFIG),
        run_dirs=[RUN.format(exp=exp, seed=seed) for exp, seed in cfg.runs(CONFIG)],
    conda:
        "../envs/main.yaml"
    envmodules:
        *modules("report"),
    log:
        log_path("report", "report"),
    benchmark:
        benchmark_path("report", "report")
    script:
        "../scripts/report.py"


# TensorBoard's HParams dashboard for one sweep (`tensorboard --logdir results/runs`), from the finished
# runs' files: a few kilobytes of event files and no TensorFlow, so it runs where snakemake runs.
localrules:
    hparams,


rule hparams:
    input:
        runs=sweep_files,
    output:
        directory(f"{RESULTS}/runs/_hparams/{{sweep}}"),
    params:
        code=code("workflow.evaluate.hparams"),
        sweep=lambda wildcards: CONFIG["sweeps"][wildcards.sweep],
        run_dirs=sweep_runs,
    conda:
        "../envs/main.yaml"
    log:
        log_path("hparams", "{sweep}"),
    benchmark:
        benchmark_path("hparams", "{sweep}")
    script:
        "../scripts/hparams.py"
