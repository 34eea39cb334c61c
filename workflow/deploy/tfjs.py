"""Convert the SavedModel to a TF.js graph model and run TF.js models in Node.js.

The converter runs in its own environment (see workflow/infra/envs.py); `.keras` to a layers model does
not load in TF.js 4.22, so the path is SavedModel -> graph model. Node.js runs the model with the
pure-JS CPU backend of `@tensorflow/tfjs` (tfjs-node's install downloads a binary from outside).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from workflow.data.features import main_output, take
from workflow.data.pipeline import load_arrays
from workflow.data.shards import read_spec
from workflow.deploy.converted import ConvertedModel, bytes_on_disk
from workflow.deploy.export import INPUT_NAME, SIGNATURE
from workflow.deploy.savedmodel import check_saved_model
from workflow.infra.atomic import atomic_path, read_json

log = logging.getLogger(__name__)
PREDICT_SCRIPT = pathlib.Path(__file__).resolve().parent / "js" / "tfjs_predict.cjs"


def convert_tfjs(
    *,
    saved_model_dir: str,
    env_manifest: str,
    output_dir: str,
    node_manifest: str | None = None,
    shards_dir: str | None = None,
    demo_examples: int = 8,
) -> list[str]:
    """Run `tensorflowjs_converter` into `output_dir` atomically; return the files written.

    With `node_manifest` and `shards_dir` of images, also a static demo page beside the model (write_demo_page).
    """
    check_saved_model(saved_model_dir)
    env = read_json(env_manifest)
    converter = pathlib.Path(env["bin"]) / "tensorflowjs_converter"
    with atomic_path(output_dir) as temporary:
        command = [
            str(converter),
            "--input_format=tf_saved_model",
            "--output_format=tfjs_graph_model",
            f"--signature_name={SIGNATURE}",
            "--saved_model_tags=serve",
            str(saved_model_dir),
            str(temporary),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        log.info("%s\n%s", " ".join(command), result.stderr[-4000:])
        if result.returncode != 0 or not (temporary / "model.json").exists():
            raise RuntimeError(f"tensorflowjs_converter failed on {saved_model_dir}:\n{result.stderr[-3000:]}")
        rewritten = unfuse_unsupported_activations(temporary / "model.json")
        if rewritten:
            log.info("split %d fused activations TF.js lacks: %s", len(rewritten), ", ".join(rewritten))
        if node_manifest and shards_dir and not read_spec(shards_dir).is_table:  # the page shows images
            about = describe_run(saved_model_dir, output_dir, shards_dir)
            write_demo_page(temporary, node_manifest, shards_dir, demo_examples, about)
        files = sorted(path.name for path in temporary.iterdir())
    return files


DEMO_PAGE = pathlib.Path(__file__).with_name("js") / "demo.html"
# Test images shipped for the page's picker: the whole test split when it fits in this many pixel values
# (all 360 of the 8x8 digits; ~380 MNIST images), so samples.json stays a small download.
DEMO_PIXEL_BUDGET = 300_000


def describe_run(saved_model_dir: str, output_dir: str, shards_dir: str) -> dict[str, str]:
    """Experiment, seed, model and dataset names for the demo page's heading.

    The step gets no config, so they come from the run's own files: the run folder
    (results/runs/<exp>/seed<k>/tfjs), train.json beside the SavedModel (written by the same run's
    train step, which the SavedModel comes from) and the shards' spec.json.
    """
    run = pathlib.Path(output_dir).parent
    train_json = pathlib.Path(saved_model_dir).parent / "train.json"
    if train_json.is_file():
        model = read_json(train_json)["params"]["model"]["name"]
    else:  # a SavedModel from elsewhere: the page still works, its heading says less
        log.warning("%s is missing: the demo page's heading names no model", train_json)
        model = "model"
    source = read_spec(shards_dir).source
    return {
        "experiment": run.parent.name,
        "seed": run.name.removeprefix("seed"),
        "model": str(model),
        "dataset": str(source.get("full_name") or source.get("name") or pathlib.Path(shards_dir).parent.name),
    }


def write_demo_page(
    folder: pathlib.Path, node_manifest: str, shards_dir: str, examples: int, about: dict[str, str]
) -> None:
    """index.html, the pinned tf.min.js (from the locked npm packages, never a CDN) and samples.json.

    The page (workflow/deploy/js/demo.html) names the run (`about`: describe_run), classifies every shipped test
    image, shows the first `examples` of them in a table, and classifies a digit drawn on its pad or any
    shipped test image picked by index.
    """
    node = read_json(node_manifest)
    bundle = pathlib.Path(node["node_path"]) / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"
    if not bundle.is_file():
        raise FileNotFoundError(f"{bundle}: the pinned @tensorflow/tfjs bundle is missing; rebuild the node_env step")
    shutil.copy2(bundle, folder / "tf.min.js")
    (folder / "index.html").write_text(fill_demo_page(DEMO_PAGE.read_text(encoding="utf-8"), about), encoding="utf-8")
    spec = read_spec(shards_dir)
    pixels = int(np.prod(spec.image_shape))
    sample = load_arrays(shards_dir, "test", limit=max(examples, DEMO_PIXEL_BUDGET // pixels))
    images = sample["images"].astype(np.int32)
    names = spec.label.names or [str(k) for k in range(int(sample["labels"].max()) + 1)]
    (folder / "samples.json").write_text(
        json.dumps(
            {
                **about,
                "input": INPUT_NAME,
                "shape": list(images.shape),
                "data": images.ravel().tolist(),
                "labels": sample["labels"].tolist(),
                "label_names": [str(name) for name in names],
                "table": min(examples, len(images)),
            }
        )  # fmt: skip
    )


def fill_demo_page(template: str, about: dict[str, str]) -> str:
    """The page with its {{experiment}}, {{seed}}, {{model}} and {{dataset}} filled in, HTML-escaped.

    Plain replacement rather than str.format or string.Template: the page's JavaScript is full of
    braces and `${...}`.
    """
    page = template
    for key in ("experiment", "seed", "model", "dataset"):
        page = page.replace("{{" + key + "}}", html.escape(about[key]))
    if "{{" in page:
        raise ValueError(f"{DEMO_PAGE}: a placeholder is left unfilled near {page[page.index('{{') :][:40]!r}")
    return page


# Activations TF.js kernels can run fused into a MatMul or Conv2D (tfjs-backend-cpu applyActivation).
# The converter fuses others too (Grappler turns Dense+tanh into _FusedMatMul[BiasAdd, Tanh]), and
# such a model then fails at inference time with "Activation tanh has not been implemented".
TFJS_FUSABLE_ACTIVATIONS = {"Relu", "Relu6", "Elu", "LeakyRelu", "Prelu", "Sigmoid"}
FUSED_OPS = {"_FusedMatMul", "_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative"}


def unfuse_unsupported_activations(model_json: pathlib.Path) -> list[str]:
    """Split fused activations TF.js cannot run into their own node; return the nodes changed."""
    model = json.loads(model_json.read_text())
    nodes = model["modelTopology"]["node"]
    changed, extra = [], []
    for node in nodes:
        fused = node.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
        names = [base64.b64decode(item).decode() for item in fused]
        if node["op"] not in FUSED_OPS or not names or names[-1] in TFJS_FUSABLE_ACTIVATIONS | {"BiasAdd"}:
            continue
        activation, original = names[-1], node["name"]
        node["name"] = f"{original}/pre_activation"
        node["attr"]["fused_ops"]["list"]["s"] = fused[:-1]
        extra.append({"name": original, "op": activation, "input": [node["name"]], "attr": {"T": node["attr"]["T"]}})
        changed.append(f"{original} ({activation})")
    if changed:
        nodes.extend(extra)
        model_json.write_text(json.dumps(model))
    return changed


def predict_tfjs(model_dir: str, inputs: dict[str, np.ndarray], node_manifest: str) -> np.ndarray:
    """Probabilities from a TF.js graph model, computed by Node.js, for served inputs."""
    return _run_node(model_dir, inputs, node_manifest)[0]


def tfjs_latency_ms(model_dir: str, example: dict[str, np.ndarray], node_manifest: str, repeats: int = 30) -> float:
    """Median time of one single-example run of the TF.js model in Node.js (pure-JS CPU backend)."""
    return _run_node(model_dir, take(example, 0, 1), node_manifest, repeats)[1]


def converted_models(folder: str, inputs: Mapping[str, str], example: dict[str, np.ndarray]) -> list[ConvertedModel]:
    """The graph model in the tfjs step's folder, run in Node.js from the node_env step's environment (`inputs`)."""
    node = inputs["node_env"]
    return [
        ConvertedModel(
            "tfjs",
            lambda chunk: predict_tfjs(folder, chunk, node),
            bytes_on_disk(folder, pattern="*.bin") + bytes_on_disk(f"{folder}/model.json"),
            lambda: tfjs_latency_ms(folder, example, node),
        )
    ]


TFJS_DTYPES = {"u": "int32", "i": "int32", "f": "float32", "b": "bool"}  # TF.js has no uint8 or int64 tensors


def _run_node(
    model_dir: str, inputs: dict[str, np.ndarray], node_manifest: str, repeats: int = 0
) -> tuple[np.ndarray, float]:
    node = read_json(node_manifest)
    with tempfile.TemporaryDirectory(prefix="tfjs-") as folder:
        input_path, output_path = pathlib.Path(folder, "input.json"), pathlib.Path(folder, "output.json")
        batch = []
        for name, values in inputs.items():
            array = np.asarray(values)
            dtype = TFJS_DTYPES.get(array.dtype.kind, "string")
            if dtype == "string":
                data = [value.decode() if isinstance(value, bytes) else str(value) for value in array.ravel()]
            else:
                data = array.astype(dtype).ravel().tolist()
            batch.append({"name": name, "dtype": dtype, "shape": list(array.shape), "data": data})
        input_path.write_text(json.dumps(batch))
        result = subprocess.run(
            [node["node"], str(PREDICT_SCRIPT), str(model_dir), str(input_path), str(output_path)]
            + ([str(repeats)] if repeats else []),
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "NODE_PATH": node["node_path"]},
        )
        if result.returncode != 0:
            raise RuntimeError(f"TF.js prediction in Node.js failed for {model_dir}:\n{result.stderr[-3000:]}")
        outputs: dict[str, Any] = json.loads(output_path.read_text())
    served = main_output(outputs)  # probabilities, or a regression's prediction
    values = np.asarray(served["data"], dtype=np.float32).reshape(served["shape"])
    return values, float(outputs.get("latency_ms", float("nan")))
