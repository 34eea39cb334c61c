"""The integer_only TFLite variant: integer input and output tensors, its quantization recorded, parity
measured through it on LiteRT and judged by the same gate (the finished default run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from workflow.data.pipeline import load_inputs
from workflow.deploy.tflite import predict_tflite

pytestmark = pytest.mark.dag
RUN = "results/runs/digits_cnn/seed0"


def test_integer_only_takes_uint8_and_returns_int8_with_its_scale_recorded(finished):
    path = finished / RUN / "tflite/integer_only.tflite"
    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    tensors = json.loads((finished / RUN / "parity.json").read_text())["formats"]["integer_only"]["tensors"]

    assert runner.get_input_details()["images"]["dtype"] == np.uint8
    assert runner.get_output_details()["probabilities"]["dtype"] == np.int8
    assert tensors["inputs"]["images"]["dtype"] == "uint8"
    probabilities = tensors["outputs"]["probabilities"]
    assert probabilities["dtype"] == "int8" and probabilities["scale"] == pytest.approx(1 / 256)
    assert probabilities["zero_point"] == -128
    # Every op but the image's cast to float and its quantization computes on integers.
    details = interpreter.get_tensor_details()
    float_ops = [
        op["op_name"]
        for op in interpreter._get_ops_details()
        if any(details[i]["dtype"] == np.float32 for i in [*op["inputs"], *op["outputs"]] if i >= 0)
    ]
    assert float_ops == ["CAST", "QUANTIZE"], float_ops


def test_integer_only_parity_is_measured_through_its_quantization_and_gated(finished):
    """parity.json's figures come from the dequantized int8 outputs: recomputing them here gives the same."""
    run = finished / RUN
    parity = json.loads((run / "parity.json").read_text())
    verdict = json.loads((run / "deploy/verdict.json").read_text())
    inputs, labels = load_inputs(str(finished / "results/datasets/digits/shards"), "test")

    probabilities = predict_tflite(str(run / "tflite/integer_only.tflite"), inputs)
    entry = parity["formats"]["integer_only"]

    assert entry["test_accuracy"] == pytest.approx(float((probabilities.argmax(axis=1) == labels).mean()))
    assert probabilities.min() >= 0 and probabilities.max() <= 1 and entry["test_accuracy"] > 0.9
    assert entry["accuracy_drop"] <= 0.005, entry
    assert verdict["formats"]["integer_only"]["within_budget"] is True, verdict["formats"]["integer_only"]
    print(f"integer_only: test accuracy {entry['test_accuracy']:.4f}, drop {entry['accuracy_drop']:+.4f}, "
          f"whole-split max abs diff {entry['test_max_abs_diff']:.4f}, {entry['bytes']} bytes")  # fmt: skip
