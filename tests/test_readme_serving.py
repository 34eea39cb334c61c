"""The README's serving request, on the finished run's published model.

The request body is taken from README.md ("Deployment gate and serving"), exactly as shown, and checked
against the SavedModel's serving signature: a real test image at the model's uint8 0-255 scale, the
signature's shape, and the image's true label predicted. TF Serving itself (docker) cannot run here, so the
README's server-less `saved_model_cli run` line is run on the same request.json instead.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.dag
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def serving_snippet() -> str:
    """The ```sh block of the README's "Deployment gate and serving" section."""
    section = README.read_text(encoding="utf-8").split("## Deployment gate and serving", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, f"expected one sh block in the serving section, found {len(blocks)}"
    return blocks[0]


def request_body(snippet: str) -> dict:
    """The JSON the snippet writes to request.json (its `cat > request.json <<'EOF'` here-document)."""
    match = re.search(r"cat > request\.json <<'EOF'\n(.*?)\nEOF\n", snippet, flags=re.DOTALL)
    assert match, "the serving snippet no longer writes request.json with a here-document"
    return json.loads(match.group(1))


def test_readme_request_is_a_test_image_the_saved_model_classifies_right(finished):
    """The body is test image N of the test split at uint8 0-255 scale, shaped as the serving signature takes it;
    run through that signature, it predicts the image's true label, the one the README states. The docker and
    curl lines point at the published model."""
    import tensorflow as tf

    from workflow.data.pipeline import load_arrays

    snippet = serving_snippet()
    body = request_body(snippet)
    section = README.read_text(encoding="utf-8").split("## Deployment gate and serving", 1)[1]
    index, label = map(int, re.search(r"test image (\d+) of the digits test split, label (\d+)", section).groups())
    mount, model_name = re.search(r'-v "\$PWD/([^":]+):/models" -e MODEL_NAME=(\w+)', snippet).groups()
    published = finished / mount / model_name / "1"
    assert (published / "saved_model.pb").is_file(), published  # TF Serving looks in /models/<MODEL_NAME>/<version>
    assert f"localhost:8501/v1/models/{model_name}:predict -d @request.json" in snippet

    instances = np.asarray(body["instances"])
    assert body["signature_name"] == "serving_default" and instances.dtype.kind == "i"
    assert instances.min() >= 0 and 16 < instances.max() <= 255  # the 0-255 scale, not scikit-learn's 0-16
    signature = tf.saved_model.load(str(published)).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.rank == instances.ndim
    assert spec.shape.is_compatible_with(instances.shape) and instances.shape == (1, *spec.shape[1:])

    split = load_arrays(str(finished / "results/datasets/digits/shards"), "test")
    assert np.array_equal(instances[0], split["images"][index]), "the body is not that test image"
    assert int(split["labels"][index]) == label
    outputs = signature(images=tf.constant(instances, dtype=tf.uint8))
    class_id, probabilities = int(outputs["class_id"][0]), outputs["probabilities"][0].numpy()
    assert class_id == label == int(re.search(r'# "class_id": (\d+)', snippet).group(1))

    raw = np.rint(split["images"].astype(np.float64) * 16 / 255).astype(np.uint8)  # the scale the README had
    raw_accuracy = float((signature(images=tf.constant(raw))["class_id"].numpy() == split["labels"]).mean())
    assert raw_accuracy < 0.5, raw_accuracy  # "most of the test split wrong"
    print(f"README body = test image {index} (label {label}): class_id {class_id}, p = {probabilities[label]:.4f}; "
          f"test split at the raw 0-16 scale: {raw_accuracy:.1%} correct")  # fmt: skip


def test_readme_saved_model_cli_line_answers_the_request_with_its_label(finished, tmp_path):
    """The README's snippet minus docker and curl, run by bash as written (request.json, then saved_model_cli
    run on the published model), prints the class_id the README states for that body."""
    snippet = serving_snippet()
    offline = "\n".join(line for line in snippet.splitlines() if not line.startswith(("docker ", "curl ")))
    assert "saved_model_cli run" in offline and "request.json" in offline
    (tmp_path / "results").symlink_to(finished / "results")  # the README's paths are relative to the checkout
    bin_dir = pathlib.Path(sys.executable).parent  # saved_model_cli and python of this environment
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "2"}

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", offline],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.search(r"Result for output key class_id:\n\[(\d+)\]", result.stdout)
    assert printed, result.stdout[-2000:]
    stated = int(re.search(r'# "class_id": (\d+)', snippet).group(1))
    assert int(printed.group(1)) == stated
    assert json.loads((tmp_path / "request.json").read_text()) == request_body(snippet)
    print(f"saved_model_cli run on the README's request.json: class_id {printed.group(1)}")
