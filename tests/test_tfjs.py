"""TF.js graph fix-ups: fused activations the TF.js kernels lack are split into their own nodes."""

from __future__ import annotations

import base64
import json

from workflow.tfjs import unfuse_unsupported_activations


def encoded(*names: str) -> list[str]:
    return [base64.b64encode(name.encode()).decode() for name in names]


def test_fused_tanh_is_split_and_relu_is_kept(tmp_path):
    """_FusedMatMul[BiasAdd, Tanh] becomes _FusedMatMul[BiasAdd] + Tanh under the old name; [BiasAdd, Relu] stays."""
    model = {"modelTopology": {"node": [
        {"name": "dense/Tanh", "op": "_FusedMatMul", "input": ["x", "w", "b"],
         "attr": {"fused_ops": {"list": {"s": encoded("BiasAdd", "Tanh")}}, "T": {"type": "DT_FLOAT"}}},
        {"name": "conv/Relu", "op": "_FusedConv2D", "input": ["dense/Tanh", "k", "c"],
         "attr": {"fused_ops": {"list": {"s": encoded("BiasAdd", "Relu")}}, "T": {"type": "DT_FLOAT"}}},
    ]}}  # fmt: skip
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model))

    changed = unfuse_unsupported_activations(path)

    nodes = {node["name"]: node for node in json.loads(path.read_text())["modelTopology"]["node"]}
    assert changed == ["dense/Tanh (Tanh)"]
    assert nodes["dense/Tanh/pre_activation"]["attr"]["fused_ops"]["list"]["s"] == encoded("BiasAdd")
    assert nodes["dense/Tanh"] == {"name": "dense/Tanh", "op": "Tanh", "input": ["dense/Tanh/pre_activation"],
                                   "attr": {"T": {"type": "DT_FLOAT"}}}  # fmt: skip
    assert nodes["conv/Relu"]["attr"]["fused_ops"]["list"]["s"] == encoded("BiasAdd", "Relu")
    assert nodes["conv/Relu"]["input"][0] == "dense/Tanh"


def test_nothing_to_split_leaves_the_file_alone(tmp_path):
    """A model without unsupported fused activations is not rewritten."""
    path = tmp_path / "model.json"
    text = json.dumps({"modelTopology": {"node": [{"name": "a", "op": "Relu", "input": ["x"], "attr": {}}]}})
    path.write_text(text)

    assert unfuse_unsupported_activations(path) == []
    assert path.read_text() == text
