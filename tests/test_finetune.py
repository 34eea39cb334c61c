"""Fine-tuning (model.init_from): weights copied by layer name and shape, a freeze schedule, config checks."""

from __future__ import annotations

import copy
import json
import pathlib
import re

import keras
import numpy as np
import pytest
import yaml
from helpers import copy_repository, planned_jobs, require_mnist, snakemake, train_params

from workflow.config import settings as cfg
from workflow.deploy.export import write_saved_model
from workflow.models.images import build_model
from workflow.train.finetune import frozen_layers, transfer_weights


def saved(model: keras.Model, folder, name: str = "source.keras") -> str:
    path = str(folder / name)
    model.save(path)
    return path


def exported(model: keras.Model, folder) -> str:
    path = folder / "saved_model"
    write_saved_model(model, path)
    return str(path)


@pytest.mark.parametrize("save", [saved, exported], ids=["keras_file", "saved_model_folder"])
def test_matching_layers_are_copied_and_the_rest_kept_fresh_with_the_reason(tmp_path, save):
    """A CNN on 8x8 digits into one on 28x28 images: the convolutions fit, the head after Flatten does not.
    The same from the SavedModel the export step writes (its variables keep their Keras paths)."""
    keras.utils.set_random_seed(0)
    source = build_model({"name": "cnn", "filters": [4, 8]}, [8, 8, 1], 10)
    target = build_model({"name": "cnn", "filters": [4, 8]}, [28, 28, 1], 10)
    fresh_logits = target.get_layer("logits").get_weights()[0].copy()

    report = transfer_weights(target, save(source, tmp_path))

    assert report["copied"] == ["conv_0", "conv_1"]
    assert report["kept_fresh"] == {"logits": "weight shapes [(8, 10), (10,)] in the source, [(200, 10), (10,)] here"}
    for name in report["copied"]:
        for ours, theirs in zip(
            target.get_layer(name).get_weights(), source.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(target.get_layer("logits").get_weights()[0], fresh_logits)
    assert len(report["sha256"]) == 64


def test_a_weights_file_loads_into_the_same_architecture_and_is_refused_by_another(tmp_path):
    source = build_model({"name": "mlp", "hidden_units": [16]}, [8, 8, 1], 10)
    path = str(tmp_path / "source.weights.h5")
    source.save_weights(path)

    same = build_model({"name": "mlp", "hidden_units": [16]}, [8, 8, 1], 10)
    assert transfer_weights(same, path)["copied"] == ["hidden_0", "logits"]
    np.testing.assert_array_equal(
        same.get_layer("hidden_0").get_weights()[0], source.get_layer("hidden_0").get_weights()[0]
    )

    other = build_model({"name": "mlp", "hidden_units": [32]}, [8, 8, 1], 10)
    with pytest.raises(ValueError, match=r"source\.weights\.h5: its weights do not fit this model"):
        transfer_weights(other, path)


def test_bad_sources_are_named(tmp_path):
    model = build_model({"name": "mlp", "hidden_units": [16]}, [8, 8, 1], 10)
    with pytest.raises(FileNotFoundError, match="missing.keras does not exist"):
        transfer_weights(model, str(tmp_path / "missing.keras"))
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(ValueError, match="model.pb: model.init_from.path must be a .keras or .weights.h5 file"):
        transfer_weights(model, str(tmp_path / "model.pb"))
    (tmp_path / "half_saved_model").mkdir()
    with pytest.raises(ValueError, match="half_saved_model: not a complete SavedModel"):
        transfer_weights(model, str(tmp_path / "half_saved_model"))
    lenet = build_model({"name": "lenet5"}, [28, 28, 1], 10)
    with pytest.raises(ValueError, match="no layer matches this model"):
        transfer_weights(model, saved(lenet, tmp_path, "lenet.keras"))


def test_freeze_schedule():
    init = {"experiment": "a", "seed": None, "path": None, "freeze": "transferred", "unfreeze_at_epoch": 2}
    copied = ["conv_0", "conv_1"]
    assert [frozen_layers(init, copied, epoch) for epoch in (-1, 0, 1, 2, 5)] == [set(copied)] * 3 + [set()] * 2
    assert frozen_layers({**init, "unfreeze_at_epoch": None}, copied, 99) == set(copied)
    assert frozen_layers({**init, "freeze": "none"}, copied, 0) == set()
    assert frozen_layers(None, copied, 0) == set()


def two_experiments(**init_from: object) -> dict:
    return {
        "datasets": {"d": {"tfds_name": "sklearn_digits"}},
        "experiments": {
            "pre": {"dataset": "d", "seeds": [0, 1], "model": {"name": "cnn"}},
            "fine": {"dataset": "d", "model": {"name": "cnn", "init_from": init_from}},
        },
    }


def test_config_resolves_the_source_run(tmp_path):
    config = cfg.load_config(two_experiments(experiment="pre"))
    assert cfg.init_source(config, "fine") == {"experiment": "pre", "seed": 0}
    assert cfg.init_source(config, "pre") is None
    assert config["experiments"]["fine"]["model"]["init_from"]["freeze"] == "transferred"
    weights = tmp_path / "base.keras"
    weights.write_bytes(b"")  # the config checks that it exists and is a .keras file; training reads it
    config = cfg.load_config(two_experiments(path=str(weights)))
    assert cfg.init_source(config, "fine") == {"path": str(weights)}


@pytest.mark.parametrize(
    ("init_from", "message"),
    [
        ({"experiment": "nope"}, "experiments.fine.model.init_from.experiment: 'nope' is not an experiment"),
        (
            {"experiment": "pre", "seed": 5},
            r"experiments.fine.model.init_from.seed: 5 is not one of pre's seeds \[0, 1\]",
        ),
        ({"experiment": "pre", "path": "x.keras"}, "give exactly one of experiment, path or hub"),
        ({"experiment": "fine"}, "in a cycle: fine -> fine"),
        ({"experiment": "pre", "unfreeze_at_epoch": 0}, "unfreeze_at_epoch: 0"),
        ({"experiment": "pre", "freeze": "some"}, "freeze: 'some'"),
    ],
)
def test_bad_init_from_is_refused_by_key(init_from, message):
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load_config(two_experiments(**init_from))


def test_a_hub_handle_is_fetched_by_its_own_step_and_fine_tuning_copies_from_it(tmp_path):
    """init_from.hub with a local .tar.gz of a SavedModel (as a TF Hub compressed download is): the dry run
    plans the `pretrained` step as an input of training; fetching unpacks it; layers copy from it."""
    import tarfile

    from workflow.train.hub import fetch, handle_key

    keras.utils.set_random_seed(0)
    source = build_model({"name": "cnn", "filters": [4, 8]}, [8, 8, 1], 10)
    folder = pathlib.Path(exported(source, tmp_path))
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as bundle:  # TF Hub archives hold the SavedModel at the top
        for item in folder.iterdir():
            bundle.add(item, arcname=item.name)
    handle = str(tmp_path / "model.tar.gz")
    repo = copy_repository(tmp_path / "repo")
    raw = two_experiments(hub=handle)
    (repo / "hub.yaml").write_text(yaml.safe_dump(raw))

    plan = snakemake(repo, "-n", "--configfile", "hub.yaml", "--replace-workflow-config",
                     "results/runs/fine/seed0/model.keras")  # fmt: skip

    assert planned_jobs(plan)["pretrained"] == 1
    fetched = tmp_path / "fetched" / handle_key(handle)
    assert f"results/pretrained/{handle_key(handle)}" in plan.stdout.split("rule train:", 1)[1].split("output:")[0]
    fetch(handle=handle, output_dir=str(fetched))
    target = build_model({"name": "cnn", "filters": [4, 8]}, [28, 28, 1], 10)
    assert transfer_weights(target, str(fetched))["copied"] == ["conv_0", "conv_1"]
    np.testing.assert_array_equal(
        target.get_layer("conv_0").get_weights()[0], source.get_layer("conv_0").get_weights()[0]
    )


def test_an_unreachable_hub_handle_fails_fast_by_name(tmp_path):
    from workflow.train.hub import fetch

    with pytest.raises(ConnectionError, match="cannot reach 127.0.0.1 .*the pretrained step is a localrule"):
        fetch(handle="https://127.0.0.1:9/model.tar.gz", output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_cycle_through_two_experiments_is_refused():
    raw = two_experiments(experiment="pre")
    raw["experiments"]["pre"]["model"]["init_from"] = {"experiment": "fine"}
    with pytest.raises(cfg.ConfigError, match="cycle: (pre -> fine -> pre|fine -> pre -> fine)"):
        cfg.load_config(raw)


def test_frozen_layers_stay_equal_to_the_source_and_unfreezing_trains_them(train_in_subprocess):
    """From a 1-layer MLP into a 2-layer one: the copied layer ends bit-equal to the source while
    frozen, and moves once unfrozen at epoch 1; the new layers train either way."""
    pre = train_params(epochs=1)
    _, source = train_in_subprocess(pre, name="pre")
    source_model = keras.models.load_model(source / "model.keras")

    for unfreeze, name in ((None, "frozen"), (1, "unfrozen")):
        params = copy.deepcopy(pre)
        params["train"]["epochs"] = 2
        params["model"]["hidden_units"] = [16, 8]
        params["model"]["init_from"] = {
            "experiment": "pre",
            "seed": None,
            "path": None,
            "freeze": "transferred",
            "unfreeze_at_epoch": unfreeze,
        }
        info, folder = train_in_subprocess(params, name=name, init_model_path=str(source / "model.keras"))
        model = keras.models.load_model(folder / "model.keras")

        assert info["init_from"]["copied"] == ["hidden_0"]
        assert sorted(info["init_from"]["kept_fresh"]) == ["hidden_1", "logits"]
        copied_equal = np.array_equal(
            model.get_layer("hidden_0").get_weights()[0], source_model.get_layer("hidden_0").get_weights()[0]
        )
        assert copied_equal == (unfreeze is None), name


def test_everything_copied_and_frozen_for_good_is_refused(train_in_subprocess, tmp_path):
    """Same architecture, freeze transferred, never unfrozen: nothing would train, so training refuses."""
    pre = train_params(epochs=1)
    _, source = train_in_subprocess(pre, name="pre")
    params = copy.deepcopy(pre)
    params["model"]["init_from"] = {
        "experiment": "pre",
        "seed": None,
        "path": None,
        "freeze": "transferred",
        "unfreeze_at_epoch": None,
    }
    with pytest.raises(AssertionError, match="every weighted layer was copied and frozen"):
        train_in_subprocess(params, name="stuck", init_model_path=str(source / "model.keras"))


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Pretrain a CNN on the 8x8 digits, fine-tune it on 28x28 MNIST, through the DAG up to the gate."""
    folder = copy_repository(tmp_path_factory.mktemp("finetune") / "repo")
    cnn = {"name": "cnn", "filters": [8, 16], "dropout": 0.0}
    config = {
        "datasets": {
            "digits": {"tfds_name": "sklearn_digits"},
            "mnist": {
                "tfds_name": "mnist",
                "manual_dir": str(require_mnist()),
                "shards": {"train": 2, "test": 1},
                "validation_percent": 0,
            },
        },
        "experiments": {
            "digits_pre": {"dataset": "digits", "model": cnn, "train": {"epochs": 10}},
            "mnist_fine": {
                "dataset": "mnist",
                "model": {**cnn, "init_from": {"experiment": "digits_pre", "unfreeze_at_epoch": 1}},
                "train": {"epochs": 2, "batch_size": 128},
            },
        },
    }
    (folder / "finetune.yaml").write_text(yaml.safe_dump(config))
    targets = [f"{FINE}/deploy/verdict.json", f"{FINE}/manifest.json"]
    base = ("--configfile", "finetune.yaml", "--replace-workflow-config", *targets)

    plan = snakemake(folder, "-n", *base)
    assert planned_jobs(plan)["train"] == 2
    fine_job = next(job for job in re.split(r"rule train:", plan.stdout) if "exp=mnist_fine" in job)
    assert "results/runs/digits_pre/seed0/model.keras" in fine_job.split("output:")[0]  # an input of the fine-tune
    result = snakemake(folder, "--cores", "2", *base)
    assert result.returncode == 0, result.stderr[-6000:]
    return folder


FINE = "results/runs/mnist_fine/seed0"


def test_finetune_through_the_dag_starts_from_the_other_experiments_model(finetuned):
    """train.json names the digits model it started from and what it copied; MNIST is learnt to 95%."""
    info = json.loads((finetuned / FINE / "train.json").read_text())
    metrics = json.loads((finetuned / FINE / "metrics.json").read_text())

    assert info["init_from"]["source"] == "results/runs/digits_pre/seed0/model.keras"
    assert info["init_from"]["copied"] == ["conv_0", "conv_1"]
    assert "logits" in info["init_from"]["kept_fresh"]
    assert metrics["examples"] == 10_000 and metrics["accuracy"] > 0.95
    assert (finetuned / FINE / "saved_model").is_dir() and (finetuned / FINE / "tflite/int8.tflite").is_file()
    assert "blessed" in json.loads((finetuned / FINE / "deploy/verdict.json").read_text())


def test_retraining_the_source_reruns_the_finetune(finetuned):
    """The fine-tune depends on the source run's model: a change to the pretraining retrains both."""
    config = yaml.safe_load((finetuned / "finetune.yaml").read_text())
    config["experiments"]["digits_pre"]["train"]["epochs"] = 11
    (finetuned / "changed.yaml").write_text(yaml.safe_dump(config))

    plan = planned_jobs(
        snakemake(finetuned, "-n", "--configfile", "changed.yaml", "--replace-workflow-config", f"{FINE}/metrics.json")
    )

    assert plan == {"train": 2, "evaluate": 1}
