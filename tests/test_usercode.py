"""A researcher's own model, dataset and augmentation (examples/shapes/), plugged in by the config alone.

One real run of the example through the whole DAG (its tfds builder over the files it ships, its
model with custom layers through model.keras, SavedModel, every TFLite variant and parity, TF.js
skipped for the reason its file declares, the gate), then dry runs that show which edits rerun what,
and the checks that refuse a bad reference before any job, naming the key.
"""

from __future__ import annotations

import contextlib
import json
import pathlib

import pytest
import yaml
from helpers import REPO, copy_repository, planned_jobs, snakemake

from workflow.config import settings as cfg
from workflow.config import usercode
from workflow.deploy import formats
from workflow.models import catalog

EXAMPLE = REPO / "examples" / "shapes"
CONFIG = "examples/shapes/config.yaml"
AFTER_TRAINING = {"train", "evaluate", "manifest", "export", "tflite", "parity", "gate", "publish", "report"}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A copy of the repository after the example's whole DAG."""
    folder = copy_repository(tmp_path_factory.mktemp("usercode") / "repo")
    result = snakemake(folder, "--configfile", CONFIG, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return folder


def run_folder(folder: pathlib.Path) -> pathlib.Path:
    return folder / "results" / "runs" / "shapes_mobilenet" / "seed0"


def test_the_example_goes_through_every_step_with_its_own_code(example):
    run = run_folder(example)
    info = json.loads((run / "train.json").read_text())
    assert info["model_code"] == {"file": "examples/shapes/model.py", "function": "build_tiny_mobilenet"}
    prepared = json.loads((example / "results" / "datasets" / "shapes" / "prepared.json").read_text())
    assert prepared["name"] == "shapes" and prepared["splits"] == {"train": 900, "test": 300}, prepared
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["examples"] == 300 and metrics["accuracy"] >= 0.9, metrics  # evaluate loaded the custom layers

    parity = json.loads((run / "parity.json").read_text())
    assert set(parity["formats"]) == {"float32", "float16", "dynamic_range", "int8", "integer_only"}, parity
    assert parity["formats"]["float32"]["max_abs_diff"] < 1e-4, parity["formats"]["float32"]
    verdict = json.loads(next((run / "deploy").glob("*.json")).read_text())
    assert "_FusedHardSwish" in verdict["skipped"]["tfjs"], verdict
    report = (example / "results" / "report" / "reproduction.md").read_text()
    assert "_FusedHardSwish" in report and "tiny_mobilenet" in report  # the report lists the skip and its reason
    assert verdict["blessed"] is True, verdict
    published = example / "results" / "deploy" / "shapes_mobilenet"
    assert (published / "shapes_mobilenet" / "1" / "saved_model.pb").is_file(), sorted(published.rglob("*"))


def test_the_dry_run_shows_the_skipped_conversion_and_its_reason(example):
    result = snakemake(example, "--configfile", CONFIG, "-n", "-R", "parity")
    assert "tfjs skipped: tensorflowjs_converter fuses HardSwish" in result.stdout + result.stderr


@contextlib.contextmanager
def edited(path: pathlib.Path, addition: str = "\n# an edit\n"):
    original = path.read_bytes()
    path.write_bytes(original + addition.encode())
    try:
        yield
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize(
    ("edited_file", "rerun"),
    [
        ("model.py", AFTER_TRAINING),
        ("layers.py", AFTER_TRAINING),  # imported by model.py from its own folder
        ("augment.py", AFTER_TRAINING),
        ("shapes.py", {"download", "tfrecord"} | AFTER_TRAINING),
        ("plots.py", set()),  # no step runs it
        ("make_raw.py", set()),
    ],
)
def test_an_edit_reruns_the_steps_that_run_the_file_and_nothing_else(example, edited_file, rerun):
    with edited(example / "examples" / "shapes" / edited_file):
        result = snakemake(example, "--configfile", CONFIG, "-n")
        jobs = planned_jobs(result)
    assert set(jobs) - {"all"} == rerun, (edited_file, jobs)
    if rerun:
        first = "download" if "download" in rerun else "train"
        text = result.stdout + result.stderr
        block = text.split(f"rule {first}:", 1)[1].split("\n\n", 1)[0]
        assert "Params have changed since last execution" in block, block


def test_the_schema_and_the_catalog_name_the_same_models():
    schema = cfg.load_schema()
    in_schema = {name.removeprefix("model_") for name in schema["$defs"] if name.startswith("model_")}
    assert in_schema == set(catalog.MODELS), in_schema ^ set(catalog.MODELS)
    # The formats a model file may declare skipped are the schema's.
    variants = schema["$defs"]["convert"]["properties"]["tflite"]["properties"]["variants"]["items"]["enum"]
    assert ("tflite", *(f"tflite:{v}" for v in variants), "tfjs") == formats.SKIP_KEYS, formats.SKIP_KEYS
    # Every built-in image builder keeps the contract a user's builder is held to.
    for name in catalog.IMAGE_MODELS:
        entry = catalog.MODELS[name]
        usercode.check({"module": entry.module, "function": entry.function}, name, usercode.MODEL_BUILDER)


def example_config(**changes: object) -> dict:
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    experiment = config["experiments"]["shapes_mobilenet"]
    for path, value in changes.items():
        section = experiment if not path.startswith("datasets") else config
        keys = path.split("__")
        for key in keys[:-1]:
            section = section[key]
        if value is None:
            section.pop(keys[-1])
        else:
            section[keys[-1]] = value
    return config


@pytest.fixture()
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)


MODEL = {"file": "examples/shapes/model.py", "function": "build_tiny_mobilenet"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model__widths": None, "model__width": [8]}, "experiments.shapes_mobilenet.model.code "
         "(examples/shapes/model.py, build_tiny_mobilenet): unknown option width "
         "(it takes: widths, se_ratio, dropout)"),
        ({"model__code": {**MODEL, "file": "examples/shapes/missing.py"}},
         "experiments.shapes_mobilenet.model.code.file: examples/shapes/missing.py does not exist"),
        ({"model__code": {**MODEL, "function": "build_vit"}},
         "model.code.function: examples/shapes/model.py defines no top-level function 'build_vit' "
         "(it defines: build_tiny_mobilenet)"),
        ({"model__code": {"file": "examples/shapes/augment.py", "function": "brightness_and_noise"}},
         "its parameters must start with input_shape, num_classes (it has images, seed, max_delta, noise)"),
        ({"model__code": {"module": "os", "function": "system"}},
         "model.code.module: os is not found as os.py or os/__init__.py in the working directory or PYTHONPATH"),
        ({"model__code": {"module": "workflow.infra.atomic", "function": "write_json"}},
         "its parameters must start with input_shape, num_classes (it has path, value)"),
        ({"model__name": "cnn"}, "model.name: cnn is a built-in model; give your own model another name"),
        ({"model__code": None}, "model.name: 'tiny_mobilenet' is not a built-in model"),
        ({"train__augment__options": {"max_delta": 0.1, "blur": 2}},
         "train.augment.code (examples/shapes/augment.py, brightness_and_noise): unknown option blur"),
        ({"train__augment__code": None}, "train.augment.options: options are for your own augmentation"),
        ({"datasets__shapes__code": {"file": "examples/shapes/shapes.py", "class": "Circles"}},
         "datasets.shapes.code.class: examples/shapes/shapes.py defines no top-level class 'Circles' "
         "(it defines: Shapes)"),
    ],
    ids=["unknown-option", "missing-file", "missing-function", "wrong-contract", "stdlib", "project-function",
         "builtin-name", "no-code", "augment-option", "options-alone", "missing-class"],
)  # fmt: skip
def test_a_bad_reference_is_refused_before_any_job_naming_the_key(at_repo_root, changes, message):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load_config(example_config(**changes))
    assert message in str(caught.value), str(caught.value)


def test_a_missing_option_without_default_is_named(at_repo_root, tmp_path):
    model = tmp_path / "needs.py"
    model.write_text("def build(input_shape, num_classes, depth, *, width=8):\n    pass\n")
    changes = {"model__code": {"file": str(model), "function": "build"}, "model__widths": None,
               "model__se_ratio": None, "model__dropout": None}  # fmt: skip
    with pytest.raises(cfg.ConfigError, match=r"model.code \(.*needs.py, build\): missing option depth"):
        cfg.load_config(example_config(**changes))


@pytest.mark.parametrize(
    "declared",
    ['SKIP_CONVERSIONS = {"onnx": "no"}', 'SKIP_CONVERSIONS = {"tfjs": __import__("os").getcwd()}'],
    ids=["unknown-format", "not-a-literal"],
)
def test_a_declared_skip_is_data_and_names_known_formats(at_repo_root, tmp_path, declared):
    model = tmp_path / "skips.py"
    marker = tmp_path / "ran"
    model.write_text(f"{declared}\nopen({str(marker)!r}, 'w')\ndef build(input_shape, num_classes):\n    pass\n")
    changes = {"model__code": {"file": str(model), "function": "build"}, "model__widths": None,
               "model__se_ratio": None, "model__dropout": None}  # fmt: skip
    with pytest.raises(cfg.ConfigError, match="SKIP_CONVERSIONS"):
        cfg.load_config(example_config(**changes))
    assert not marker.exists()  # nothing of the file ran


def test_snakemake_refuses_a_bad_option_naming_the_key(tmp_path):
    folder = copy_repository(tmp_path / "repo")
    config = example_config(model__dropout=None, model__drop=0.5)
    (folder / "bad.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(folder, "--configfile", "bad.yaml", "-n")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "experiments.shapes_mobilenet.model.code (examples/shapes/model.py, build_tiny_mobilenet): unknown " \
           "option drop" in output, output[-2000:]  # fmt: skip
    assert not (folder / "results").exists()


def test_a_module_reference_loads_from_the_working_directory(tmp_path, monkeypatch):
    package = tmp_path / "my_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("WIDTH = 3\n")
    (package / "models.py").write_text("from my_project.helpers import WIDTH\n\ndef build(input_shape, num_classes):\n"
                                       "    return WIDTH\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    ref = {"module": "my_project.models", "function": "build"}
    assert usercode.check(ref, "model.code", usercode.MODEL_BUILDER) == pathlib.Path("my_project/models.py")
    assert usercode.load(ref)((8, 8, 1), 10) == 3
    before = usercode.digest(ref)
    (package / "helpers.py").write_text("WIDTH = 4\n")  # a module it imports from its own package
    usercode._digest_of.cache_clear()
    usercode._files_of.cache_clear()
    assert usercode.digest(ref) != before


def test_config_overrides_of_a_users_options_are_typed_by_their_defaults(at_repo_root):
    """`--config` gives nested values as text; a user's option is read as YAML unless its default is text."""
    given = {"experiments": {"shapes_mobilenet": {"model": {"se_ratio": "0.5", "widths": "[8, 16]"}}}}
    raw = example_config(model__se_ratio="0.5", model__widths="[8, 16]")
    model = cfg.load_config(raw, command_line=given)["experiments"]["shapes_mobilenet"]["model"]
    assert model["se_ratio"] == 0.5 and model["widths"] == [8, 16], model
