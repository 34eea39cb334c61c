"""Tables: a user's CSV and a bundled tfds table through the whole DAG, FeatureSpace, logistic
regression and boosted trees, their served signatures of raw columns, and conversions skipped with
their reason already in the dry run."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import copy_repository, planned_jobs, snakemake

from workflow.config import settings as cfg
from workflow.data.shards import Label, Spec
from workflow.deploy.formats import TFLITE_FLEX_OPS, skipped_conversions

PENGUINS_FEATURES = {
    "island": {"type": "string_categorical", "embedding_dim": 3},
    "sex": {"type": "string_hashed", "num_bins": 8},
    "year": "integer_categorical",
    "bill_length_mm": "float_normalized",
    "bill_depth_mm": "float_normalized",
    "flipper_length_mm": {"type": "float_discretized", "num_bins": 6},
    "body_mass_g": "float_normalized",
}


def penguins_csv() -> pathlib.Path:
    """The Palmer penguins CSV shipped by the palmerpenguins package (344 rows, strings, integers, NA)."""
    try:
        import palmerpenguins
    except ImportError:
        pytest.fail("palmerpenguins is missing: pip install -r envs/test.txt (make test does)")
    return pathlib.Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


def test_a_csv_becomes_typed_columns_and_rows_with_missing_values_are_dropped():
    from workflow.data.datasets.csv_table import read_table

    columns, classes, labels, dropped = read_table(str(penguins_csv()), "species")

    assert classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert dropped == 11 and len(labels) == 333  # 344 rows, 11 with a missing value
    assert {name: values.dtype.kind for name, values in columns.items()} == {
        "island": "O", "sex": "O", "year": "i", "bill_length_mm": "f", "bill_depth_mm": "f",
        "flipper_length_mm": "f", "body_mass_g": "f",
    }  # fmt: skip
    assert columns["island"][0] == "Torgersen" and columns["year"][0] == 2007 and labels[0] == 0


def test_a_csv_regression_target_is_a_float_column():
    from workflow.data.datasets.csv_table import read_table

    columns, classes, labels, _ = read_table(str(penguins_csv()), "body_mass_g", "regression")

    assert classes == [] and labels.dtype == np.float32 and labels[0] == 3750.0 and "body_mass_g" not in columns
    with pytest.raises(ValueError, match="column 'species' .* is not numeric, so it cannot be a regression target"):
        read_table(str(penguins_csv()), "species", "regression")


@pytest.mark.parametrize(
    ("label", "path", "message"),
    [
        ("kind", None, "no column 'kind' (csv.label); its columns: species, island"),
        ("species", "missing.csv", "missing.csv does not exist"),
    ],
)
def test_a_bad_csv_is_named(tmp_path, label, path, message):
    from workflow.data.datasets.csv_table import read_table

    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
        read_table(str(tmp_path / path) if path else str(penguins_csv()), label)


@pytest.mark.parametrize(
    ("features", "crosses", "message"),
    [
        ({"beak": "float"}, [], "model.features.beak: the table has no column 'beak'; its columns: island, mass"),
        ({"island": "float_normalized"}, [], "model.features.island: type float_normalized does not take a string"),
        ({"island": "string_hashed"}, [], "model.features.island: type string_hashed needs num_bins"),
        ({"mass": {"type": "float", "embedding_dim": 2}}, [], "model.features.mass: embedding_dim needs a categorical"),
        ({"mass": "float", "island": "string_categorical"}, [{"features": ["island", "mass"], "crossing_dim": 4}],
         "model.crosses[0]: 'mass' must be a categorical, hashed or discretized feature"),
    ],
)  # fmt: skip
def test_feature_settings_name_the_bad_key(features, crosses, message):
    from workflow.models.tables import feature_settings

    columns = {"island": {"dtype": "string"}, "mass": {"dtype": "float32"}}
    with pytest.raises(ValueError, match=re.escape(message)):
        feature_settings({"features": features, "crosses": crosses}, columns)


@pytest.mark.parametrize(
    ("model", "features", "message"),
    [
        ("linear", {"image": {"shape": [8, 8, 1]}}, "model.name linear: takes a table"),
        (
            "cnn",
            {"columns": {"a": {"dtype": "float32"}}},
            "model.name cnn: takes images, but shards/ holds a table (1 columns)",
        ),
    ],
)
def test_a_model_for_other_data_is_refused_by_name(model, features, message):
    from workflow.train.trainer import check_model_fits_data

    with pytest.raises(ValueError, match=re.escape(message)):
        spec = Spec.from_json({"features": {**features, "label": {"dtype": "int64", "num_classes": 2}}, "splits": {}})
        check_model_fits_data({"name": model}, spec, "shards/")


def test_the_star_stands_for_every_column_not_listed():
    from workflow.models.tables import feature_settings

    columns = {"a": {"dtype": "float32"}, "b": {"dtype": "float32"}, "c": {"dtype": "string"}}
    settings = feature_settings({"features": {"*": "float", "c": {"type": "string_hashed", "num_bins": 4}}}, columns)

    assert settings == {"a": {"type": "float"}, "b": {"type": "float"}, "c": {"type": "string_hashed", "num_bins": 4}}


def test_conversions_are_planned_from_the_config_alone():
    """Numeric features convert everywhere; lookups, hashing, bins and crosses name the ops that stop
    each converter; allow_flex lets TFLite take them; forests skip only the quantized variants."""
    numeric = {"name": "linear", "features": {"*": "float_normalized"}, "crosses": []}
    categorical = {"name": "wide_and_deep", "features": PENGUINS_FEATURES, "crosses": []}
    every = ["float32", "float16", "dynamic_range", "int8", "integer_only"]
    convert = {"tflite": {"variants": every, "allow_flex": False}, "tfjs": {"enabled": True}}
    flex_no_tfjs = {"tflite": {"variants": every, "allow_flex": True}, "tfjs": {"enabled": False}}

    assert set(skipped_conversions(numeric, convert)) == {"tflite:integer_only"}
    skipped = skipped_conversions(categorical, convert)
    assert "year (integer_categorical: HashTableV2, LookupTableFindV2" in skipped["tflite"]
    assert "island (string_categorical: DenseBincount)" in skipped["tflite"]
    assert "flipper_length_mm (float_discretized: the converter does not support op Bucketize)" in skipped["tfjs"]
    assert "bill_length_mm" not in skipped["tflite"] + skipped["tfjs"]
    assert set(skipped_conversions(categorical, flex_no_tfjs)) == {"tflite:integer_only"}
    trees = skipped_conversions({"name": "gradient_boosted_trees"}, convert)
    assert set(trees) == {"tflite:int8", "tflite:dynamic_range", "tflite:integer_only"}
    assert skipped_conversions({"name": "cnn"}, convert) == {}
    # Only what the config asks for is skipped: a variant not chosen has nothing to skip.
    few = {**convert, "tflite": {"variants": ["float32", "int8"], "allow_flex": False}}
    assert set(skipped_conversions({"name": "gradient_boosted_trees"}, few)) == {"tflite:int8"}
    assert cfg.formats.converted({"name": "gradient_boosted_trees"}, few) == {"tflite": ["float32"], "tfjs": ["tfjs"]}


@pytest.mark.parametrize("learner", ["gradient_boosted_trees", "random_forest"])
@pytest.mark.parametrize("bundle", ["load_breast_cancer", "load_wine", "load_diabetes"])
def test_the_forest_layer_reproduces_ydf(learner, bundle):
    """The DecisionForest Keras layer built from a YDF forest gives YDF's probabilities (2 and 3 classes)
    or, for the diabetes regression, its predictions."""
    import sklearn.datasets
    import ydf

    from workflow.models.forests import build_forest_model, forest_arrays, ydf_outputs

    features, labels = getattr(sklearn.datasets, bundle)(return_X_y=True)
    names = [f"column_{index:02d}" for index in range(features.shape[1])]
    data = {name: features[:, index].astype(np.float32) for index, name in enumerate(names)}
    regression = bundle == "load_diabetes"
    classes = None if regression else int(labels.max()) + 1
    task = {"task": ydf.Task.REGRESSION} if regression else {}
    if learner == "gradient_boosted_trees":
        trainer = ydf.GradientBoostedTreesLearner(label="label", num_trees=30, random_seed=1, **task)
    else:
        votes = {} if regression else {"winner_take_all": True}
        trainer = ydf.RandomForestLearner(label="label", num_trees=20, random_seed=1, **task, **votes)
    forest = trainer.train({**data, "label": labels}, verbose=0)

    arrays = forest_arrays(forest, {name: index for index, name in enumerate(names)}, classes)
    model = build_forest_model(arrays, {name: {"dtype": "float32"} for name in names})
    actual = np.asarray(model({name: values[:, None] for name, values in data.items()}))

    expected = ydf_outputs(forest, data, classes)
    np.testing.assert_allclose(actual, expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    if regression:
        assert np.corrcoef(actual[:, 0], labels)[0, 1] > 0.7  # fits its train data
    else:
        assert (actual.argmax(axis=1) == labels).mean() > 0.95


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole DAG on a tfds table (logistic regression, boosted trees) and a CSV (FeatureSpace wide-and-deep)."""
    folder = copy_repository(tmp_path_factory.mktemp("tables") / "repo")
    shutil.copy(penguins_csv(), folder / "penguins.csv")
    config = {
        "datasets": {
            "cancer": {"tfds_name": "sklearn_breast_cancer", "shards": {"train": 1, "validation": 1, "test": 1}},
            "diabetes": {"tfds_name": "sklearn_diabetes", "shards": {"train": 1, "validation": 1, "test": 1}},
            "penguins": {"csv": {"path": "penguins.csv", "label": "species"}},
        },
        "experiments": {
            "cancer_logistic": {
                "dataset": "cancer",
                "model": {"name": "linear", "features": {"*": "float_normalized"}},
                "train": {"epochs": 20, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.01}},
            },
            "diabetes_linear": {
                "dataset": "diabetes",
                "model": {"name": "linear", "features": {"*": "float_normalized"}},
                "train": {
                    "epochs": 60,
                    "batch_size": 32,
                    "optimizer": {"name": "adam", "learning_rate": 2.0},
                    "schedule": {"name": "cosine", "alpha": 0.01},
                },
                "target": {"metric": "rmse", "value": 60.0, "direction": "lower", "source": "least squares: ~54"},
            },
            "cancer_trees": {
                "dataset": "cancer",
                "model": {"name": "gradient_boosted_trees", "num_trees": 50, "max_depth": 4},
            },
            "penguins_wide_deep": {
                "dataset": "penguins",
                "model": {
                    "name": "wide_and_deep",
                    "features": PENGUINS_FEATURES,
                    "crosses": [{"features": ["sex", "flipper_length_mm"], "crossing_dim": 16}],
                    "hidden_units": [16],
                },
                "train": {"epochs": 30, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.01}},
            },
        },
    }
    (folder / "tables.yaml").write_text(yaml.safe_dump(config))
    base = ("--configfile", "tables.yaml", "--replace-workflow-config")
    plan = snakemake(folder, "-n", *base)
    result = snakemake(folder, "--cores", "2", *base)
    assert result.returncode == 0, result.stderr[-6000:]
    return {"folder": folder, "plan": plan, "base": base}


def run_json(tables: dict, experiment: str, name: str) -> dict:
    return json.loads((tables["folder"] / f"results/runs/{experiment}/seed0/{name}").read_text())


@pytest.mark.dag
def test_the_dry_run_already_says_which_conversions_are_skipped_and_why(tables):
    """Before anything ran: the parity jobs' messages name each skipped conversion, its features and ops."""
    text = tables["plan"].stdout
    planned = planned_jobs(tables["plan"])
    assert planned["tfjs"] == 3 and planned["parity"] == 4 and planned["download"] == 3  # no TF.js for the CSV model
    wide = text.split("parity of penguins_wide_deep:", 1)[1].split("\n\n", 1)[0]
    assert "SavedModel against no converted format" in wide
    assert "tflite skipped: the LiteRT builtins lack ops these features need: " in wide
    assert "cross sex x flipper_length_mm (cross: SparseCross, DenseBincount)" in wide
    assert "island (string_categorical: lookup tables do not convert" in wide
    trees = text.split("parity of cancer_trees:", 1)[1].split("\n\n", 1)[0]
    assert "SavedModel against float32, float16, tfjs" in trees and "tflite:int8 skipped: " in trees


@pytest.mark.dag
def test_tables_learn_and_every_conversion_that_runs_matches_the_saved_model(tables):
    """Accuracy on the test rows; LiteRT and TF.js agree with the SavedModel's probabilities."""
    logistic = run_json(tables, "cancer_logistic", "parity.json")
    trees = run_json(tables, "cancer_trees", "parity.json")
    wide = run_json(tables, "penguins_wide_deep", "parity.json")

    assert run_json(tables, "cancer_logistic", "metrics.json")["accuracy"] >= 0.93
    assert run_json(tables, "cancer_trees", "metrics.json")["accuracy"] >= 0.93
    assert run_json(tables, "penguins_wide_deep", "metrics.json")["accuracy"] >= 0.93
    assert logistic["test_examples"] == 114 and wide["test_examples"] == 67  # every fifth of 569 and of 333 rows
    assert set(logistic["formats"]) == {"float32", "float16", "dynamic_range", "int8", "tfjs"}
    assert logistic["formats"]["float32"]["max_abs_diff"] < 1e-5 and logistic["formats"]["tfjs"]["max_abs_diff"] < 1e-5
    assert set(trees["formats"]) == {"float32", "float16", "tfjs"}
    assert trees["formats"]["float32"]["max_abs_diff"] < 1e-5 and trees["formats"]["tfjs"]["max_abs_diff"] < 1e-5
    assert set(trees["skipped"]) == {"tflite:int8", "tflite:dynamic_range", "tflite:integer_only"}
    assert wide["formats"] == {} and set(wide["skipped"]) == {"tflite", "tfjs"}
    verdict = run_json(tables, "penguins_wide_deep", "deploy/verdict.json")
    assert "SparseCross" in verdict["skipped"]["tflite"]
    assert run_json(tables, "cancer_trees", "train.json")["max_abs_diff_vs_ydf"] < 1e-5
    report = (tables["folder"] / "results/report/reproduction.md").read_text()
    assert "| penguins_wide_deep | 0 | tfjs |" in report and "lookup tables do not convert" in report


@pytest.mark.dag
def test_linear_regression_runs_the_whole_lifecycle(tables):
    """Linear regression of diabetes progression: RMSE and R^2 near least squares', its target met; the
    served `prediction`, LiteRT and TF.js equal to the SavedModel's; the gate judges scaled differences."""
    metrics = run_json(tables, "diabetes_linear", "metrics.json")
    parity = run_json(tables, "diabetes_linear", "parity.json")
    verdict = run_json(tables, "diabetes_linear", "deploy/verdict.json")

    assert metrics["examples"] == 89 and metrics["rmse"] < 60 and metrics["r2"] > 0.4 and metrics["verdict"]["passed"]
    assert set(parity["formats"]) == {"float32", "float16", "dynamic_range", "int8", "tfjs"}
    for name in ("float32", "tfjs"):
        assert parity["formats"][name]["max_scaled_diff"] < 1e-5 and abs(parity["formats"][name]["mae_increase"]) < 1e-3
    assert "top1_agreement" not in parity["formats"]["float32"] and parity["saved_model"]["test_mae"] > 30
    assert verdict["formats"]["float32"]["within_budget"]
    assert run_json(tables, "diabetes_linear", "export.json")["outputs"] == {"prediction": "float32"}


@pytest.mark.dag
def test_the_served_model_takes_raw_columns_with_its_preprocessing_inside(tables):
    """The CSV model's SavedModel takes one raw input per column (strings as strings) and gives the
    Keras model's probabilities; saved_model_cli shows the typed inputs."""
    import tensorflow as tf

    from workflow.models.images import load_trained_model

    run = tables["folder"] / "results/runs/penguins_wide_deep/seed0"
    rows = {
        "island": np.array([b"Torgersen", b"Biscoe", b"Dream"], dtype=object),
        "sex": np.array([b"male", b"female", b"female"], dtype=object),
        "year": np.array([2007, 2008, 2009], dtype=np.int64),
        "bill_length_mm": np.array([39.1, 46.5, 49.0], dtype=np.float32),
        "bill_depth_mm": np.array([18.7, 13.5, 19.5], dtype=np.float32),
        "flipper_length_mm": np.array([181, 210, 210], dtype=np.float32),
        "body_mass_g": np.array([3750, 4550, 3950], dtype=np.float32),
    }
    served = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]
    probabilities = served(**{name: tf.constant(values) for name, values in rows.items()})["probabilities"].numpy()
    keras_model = load_trained_model(str(run / "model.keras"))
    expected = np.asarray(keras_model({name: tf.constant(values)[:, None] for name, values in sorted(rows.items())}))

    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert probabilities.argmax(axis=1).tolist() == [0, 2, 1]  # Adelie, Gentoo, Chinstrap
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    command = [str(cli), "show", "--dir", str(run / "saved_model"), "--tag_set", "serve", "--signature_def"]
    shown = subprocess.run([*command, "serving_default"], capture_output=True, text=True, check=True).stdout
    assert "inputs['island']" in shown and "DT_STRING" in shown and "inputs['year']" in shown and "DT_INT64" in shown
    export = run_json(tables, "penguins_wide_deep", "export.json")
    assert export["inputs"]["island"] == {"dtype": "string", "shape": [None]}


@pytest.mark.dag
def test_allow_flex_converts_a_lookup_model_that_parity_then_reports_as_unmeasured(tables, tmp_path):
    """With allow_flex the FeatureSpace model converts with TF Select ops; Python's LiteRT cannot run
    them, so parity records it as not measured, with why, and the gate does not bless it."""
    from workflow.deploy.gate import judge_format
    from workflow.deploy.parity import measure_parity

    folder = tables["folder"]
    run, shards = folder / "results/runs/penguins_wide_deep/seed0", str(folder / "results/datasets/penguins/shards")
    from workflow.deploy.tflite import convert_tflite

    tflite = tmp_path / "tflite/float32.tflite"
    tflite.parent.mkdir()
    convert_tflite(saved_model_dir=str(run / "saved_model"), shards_dir=shards, output_path=str(tflite),
                   variant="float32", allow_flex=True)  # fmt: skip

    report = measure_parity(saved_model_dir=str(run / "saved_model"), formats={"tflite": str(tflite.parent)},
                            shards_dir=shards, parity_path=str(tmp_path / "parity.json"),
                            batch_size=32)  # fmt: skip

    entry = report["formats"]["float32"]
    assert "FlexHashTableV2" in entry["flex_ops"] and "latency_ms" not in entry
    assert "Flex delegate" in entry["not_measured"] and report["saved_model"]["test_accuracy"] >= 0.93
    judged = judge_format(
        "float32", entry, {"max_abs_diff": 1e-4, "min_top1_agreement": 1.0, "max_accuracy_drop": 0.01}
    )
    assert not judged["within_budget"] and "not measured" in judged["reason"]


@pytest.mark.dag
def test_editing_the_csv_reruns_its_dataset_and_nothing_else(tables):
    """The CSV is an input of its download step: a changed row reruns the penguins chain, not the cancer runs."""
    folder = tables["folder"]
    assert planned_jobs(snakemake(folder, "-n", *tables["base"])) == {}
    csv = folder / "penguins.csv"
    csv.write_text(csv.read_text().replace("Adelie,Torgersen,39.1,", "Adelie,Torgersen,39.2,", 1))

    planned = planned_jobs(snakemake(folder, "-n", *tables["base"]))

    assert planned["download"] == 1 and planned["tfrecord"] == 1 and planned["train"] == 1
    prepared = json.loads((folder / "results/datasets/penguins/prepared.json").read_text())
    assert prepared["csv"]["rows_dropped_for_missing_values"] == 11 and prepared["splits"] == {"train": 266, "test": 67}


def test_table_configs_load():
    """configs/tables.yaml is valid and plans its conversions."""
    loaded = cfg.load_config(yaml.safe_load((pathlib.Path(__file__).parent.parent / "configs/tables.yaml").read_text()))

    assert cfg.converted_models(loaded, "cancer_logistic")["tflite"] == ["float32", "float16", "dynamic_range", "int8"]
    assert cfg.converted_models(loaded, "cancer_boosted_trees")["tflite"] == ["float32", "float16"]
    assert "tfjs" not in cfg.converted_models(loaded, "cancer_wide_deep")


@pytest.mark.parametrize("kind", ["float_normalized", *sorted(TFLITE_FLEX_OPS)])
def test_the_tflite_ops_each_feature_type_needs_are_what_the_plan_says(tmp_path, kind):
    """The conversion plan's table (workflow/deploy/formats.py) against the real converter: a one-feature
    FeatureSpace model per type is refused naming exactly the TF Select ops the plan lists; a
    normalized number converts to builtins."""
    import tensorflow as tf

    from workflow.deploy.export import write_saved_model
    from workflow.deploy.tflite import FlexOpsError, convert_tflite, flex_ops_needed
    from workflow.models.tables import build_table_model

    values = {"n": np.arange(40, dtype=np.float32), "i": np.arange(40) % 4, "s": np.array(["a", "b"] * 20)}
    columns = {"n": {"dtype": "float32"}, "i": {"dtype": "int64"}, "s": {"dtype": "string"}}
    features = {
        "float_normalized": {"n": "float_normalized"},
        "float_discretized": {"n": {"type": "float_discretized", "num_bins": 4}},
        "integer_categorical": {"i": "integer_categorical"},
        "string_categorical": {"s": "string_categorical"},
        "integer_hashed": {"i": {"type": "integer_hashed", "num_bins": 4}},
        "string_hashed": {"s": {"type": "string_hashed", "num_bins": 4}},
        "cross": {"i": {"type": "integer_hashed", "num_bins": 4}, "s": {"type": "string_hashed", "num_bins": 4}},
    }[kind]
    crosses = [{"features": ["i", "s"], "crossing_dim": 8}] if kind == "cross" else []
    used = {name: columns[name] for name in features}
    data = tf.data.Dataset.from_tensor_slices({name: values[name][:, None] for name in used}).batch(8)
    model = build_table_model({"name": "linear", "features": features, "crosses": crosses}, used, 2, data)
    write_saved_model(model, tmp_path / "saved_model", Spec({}, Label("int64", 2), {}, columns=used))
    convert = {"saved_model_dir": str(tmp_path / "saved_model"), "shards_dir": "", "variant": "float32"}

    if kind == "float_normalized":
        assert convert_tflite(**convert, output_path=str(tmp_path / "m.tflite")) > 0
        return
    with pytest.raises(FlexOpsError) as refused:
        convert_tflite(**convert, output_path=str(tmp_path / "m.tflite"))
    needed = set(flex_ops_needed(str(refused.value).replace("lack: ", "TF Select ops: ").split(". Set")[0]))
    listed = set(TFLITE_FLEX_OPS[kind].split(", "))
    if kind == "cross":  # the crossed features' own ops come with it
        listed |= set(TFLITE_FLEX_OPS["integer_hashed"].split(", ")) | set(TFLITE_FLEX_OPS["string_hashed"].split(", "))
    assert needed == listed
