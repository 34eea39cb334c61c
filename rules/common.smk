# Paths and input functions shared by the rules. Logic lives in workflow/; these only choose paths.
import functools

from workflow.config import settings as cfg
from workflow.models.catalog import BUILDER_MODULES
from workflow.infra.codedeps import code_digest
from workflow.deploy.formats import BY_NAME as FORMATS_BY_NAME
from workflow.deploy.formats import RUNTIME_FILES, RUNTIME_MODULES
from workflow.train.hub import handle_key

RESULTS = "results"
RUN = f"{RESULTS}/runs/{{exp}}/seed{{seed}}"
EXPERIMENTS = list(CONFIG["experiments"])


wildcard_constraints:
    exp="[A-Za-z0-9][A-Za-z0-9_-]*",
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",
    sweep="[A-Za-z0-9][A-Za-z0-9_-]*",
    seed=r"\d+",
    key="[0-9a-f]{16}",


def repo_path(relative):
    """A file of the repository, absolute, so the workflow runs from any working directory."""
    return os.path.join(workflow.basedir, relative)


def code(*modules, extra=()):
    """Digest of the workflow/ files a step imports, as its `code` param: editing one reruns the step."""
    return code_digest(*modules, extra=extra)


def modules(rule_name):
    """Environment modules for `--sdm env-modules`, from the config's `envmodules`."""
    return cfg.envmodules(CONFIG, rule_name)


def log_path(rule_name, name):
    return f"{RESULTS}/logs/{rule_name}/{name}.log"


def benchmark_path(rule_name, name):
    return f"{RESULTS}/benchmarks/{rule_name}/{name}.tsv"


def shards_of(wildcards):
    """The shards folder of the experiment's dataset."""
    dataset = CONFIG["experiments"][wildcards.exp]["dataset"]
    return f"{RESULTS}/datasets/{dataset}/shards"


def prepared_of(wildcards):
    """The download manifest of the experiment's dataset."""
    dataset = CONFIG["experiments"][wildcards.exp]["dataset"]
    return f"{RESULTS}/datasets/{dataset}/prepared.json"


def init_model_of(wildcards):
    """What training starts from (model.init_from): another run's model.keras, a path, a fetched hub model, or none."""
    source = cfg.init_source(CONFIG, wildcards.exp)
    if source is None:
        return []
    if "path" in source:
        return [source["path"]]
    if "hub" in source:
        return [f"{RESULTS}/pretrained/{handle_key(source['hub'])}"]
    return [f"{RUN}/model.keras".format(exp=source["experiment"], seed=source["seed"])]


@functools.cache
def train_resources_of(exp):
    """The Slurm resources of an experiment's train job, computed once per experiment (ten per job)."""
    return cfg.train_resources(CONFIG, exp)


def train_resource(name):
    """An input function giving one Slurm resource of the experiment's train job."""
    return lambda wildcards: train_resources_of(wildcards.exp)[name]


def train_job_resources():
    """The train job's Slurm resources: a plain value where every experiment asks the same (the default
    config, every sweep), a function of the wildcards where they differ, left out where all say None.
    Snakemake inspects and calls each function once per job: ten per train job were a tenth of the
    functions a 1000-experiment dry run applies (docs/performance.md, DAG scale)."""
    resources = {}
    for name in train_resources_of(EXPERIMENTS[0]) if EXPERIMENTS else ():
        values = [train_resources_of(exp)[name] for exp in EXPERIMENTS]
        if any(value != values[0] for value in values):
            resources[name] = train_resource(name)
        elif values[0] is not None:
            resources[name] = values[0]
    return resources


@functools.cache
def formats_of(exp):
    """The formats an experiment converts to, computed once per experiment (several input functions ask)."""
    return tuple(cfg.converted_models(CONFIG, exp))


def format_folders(wildcards):
    """The folder of each format the experiment converts to, by the format's name (workflow/deploy/formats.py)."""
    return {name: f"{RUN}/{name}" for name in formats_of(wildcards.exp)}


def parity_inputs(wildcards):
    """What parity measures: each format's folder, and the other files its runtime needs to run it."""
    files = format_folders(wildcards)
    for name in list(files):
        files.update({key: f"{RESULTS}/{path}" for key, path in FORMATS_BY_NAME[name].parity_inputs})
    return files


def published_run(wildcards):
    """The files of the run an experiment publishes (deploy.seed, or its first seed)."""
    seed = cfg.publish_params(CONFIG, wildcards.exp)["seed"]
    concrete = lambda path: path.format(exp=wildcards.exp, seed=seed)
    files = {"verdict": f"{RUN}/deploy/verdict.json", "saved_model": f"{RUN}/saved_model", **format_folders(wildcards)}
    return {key: concrete(path) for key, path in files.items()}


def sweep_runs(wildcards):
    """The run folders of a sweep's points, every seed."""
    points = CONFIG["sweeps"][wildcards.sweep]["points"]
    return [RUN.format(exp=exp, seed=seed) for exp, seed in cfg.runs(CONFIG) if exp in points]


def sweep_files(wildcards):
    """What a sweep's HParams sessions are made of: each run's test metrics and training history."""
    return [f"{folder}/{name}" for folder in sweep_runs(wildcards) for name in ("metrics.json", "history.json")]


# Every step of every run is a target, not only the last ones: Snakemake, like make, does not
# rebuild a missing file that only feeds outputs which exist. So when a forced rerun (`-R`) is
# killed or fails after Snakemake removed the old outputs, a plain rerun completes it (the missing
# file is a target) and everything after it reruns, instead of "Nothing to be done" over stale files.
# A failed job loses all its outputs together, so its first output stands for it (fewer targets
# keep a 1000-experiment dry run within benchmarks/dag_scale.py's budget).
RUN_STEPS = ("train", "evaluate", "manifest", "export", "parity", "gate")


def output_of(rule_name, **wildcards):
    """The first output path of one job of `rule_name`, from the rule itself (so the targets follow the rules)."""
    return getattr(rules, rule_name).output[0].format(**wildcards)


def run_outputs(exp, seed):
    """One output of each step of one experiment and seed, each format's conversion included."""
    steps = RUN_STEPS + formats_of(exp)
    return [output_of(step, exp=exp, seed=seed) for step in steps]


def final_outputs():
    """The default target: every step of every run, dataset, hub fetch and publish, each sweep's HParams
    sessions, and the report."""
    files = [path for exp, seed in cfg.runs(CONFIG) for path in run_outputs(exp, seed)]
    for dataset in cfg.dataset_names(CONFIG):
        files += [output_of("download", dataset=dataset), output_of("tfrecord", dataset=dataset)]
    files += [output_of("pretrained", key=key) for key in cfg.hub_keys(CONFIG)]
    files += [output_of("publish", exp=exp) for exp in EXPERIMENTS]
    files += [output_of("hparams", sweep=sweep) for sweep in CONFIG.get("sweeps", {})]
    return files + [output_of("report")]
