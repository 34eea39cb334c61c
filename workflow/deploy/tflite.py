"""Convert the SavedModel to TFLite variants and run them with LiteRT.

Variants: float32; float16 (weights stored as float16); dynamic_range (int8 weights, float
activations); int8 (int8 weights and activations calibrated on train examples, float32 output);
integer_only (as int8, with integer input and output tensors, as microcontrollers and Edge TPU
compilers need: the uint8 pixels in, int8 probabilities out with their scale and zero point,
`tensor_quantization`; only the image's cast to float and its quantization, the first two ops,
touch a float tensor). Conversion goes
through `TFLiteConverter.from_saved_model`: `from_concrete_functions` on a Keras 3 model writes a
model without weights that outputs NaN. Models run with LiteRT (`ai_edge_litert`), not the
deprecated `tf.lite.Interpreter`.
"""

from __future__ import annotations

import functools
import logging
import pathlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from workflow.data.features import as_numpy, count, main_output, take
from workflow.data.pipeline import load_inputs
from workflow.deploy.converted import ConvertedModel, bytes_on_disk
from workflow.deploy.export import SIGNATURE
from workflow.deploy.latency import tflite_latency_ms
from workflow.deploy.savedmodel import check_saved_model
from workflow.infra.atomic import atomic_path

log = logging.getLogger(__name__)


VARIANTS = ("float32", "float16", "dynamic_range", "int8", "integer_only")


class FlexOpsError(ValueError):
    """The model needs TF Select (Flex) ops and the config does not allow them."""


def flex_ops_needed(message: str) -> list[str]:
    """The TensorFlow ops a failed conversion says the LiteRT builtins lack ("TF Select ops: A, B")."""
    found: set[str] = set()
    for line in re.findall(r"TF Select ops: ([^\n]+)", message):
        found.update(name.strip() for name in line.split(",") if name.strip())
    found.update(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message))
    return sorted(found)


def flex_ops_in(path: str) -> list[str]:
    """The Flex (TF Select) ops a TFLite model contains; [] for a builtins-only model."""
    interpreter = Interpreter(model_path=path)
    return sorted({op["op_name"] for op in interpreter._get_ops_details() if op["op_name"].startswith("Flex")})


def convert_tflite_variants(
    *, saved_model_dir: str, shards_dir: str, output_dir: str, variants: dict[str, dict[str, Any]], allow_flex: bool
) -> dict[str, int]:
    """Every variant into `output_dir` as `<variant>.tflite`, atomically as one folder; bytes per variant.

    One job for all variants: TensorFlow's import is most of a conversion's time (4.4 of 7.7 s per
    variant on the default config, benchmarks/step_startup.py), so four jobs paid it four times.
    """
    sizes = {}
    with atomic_path(output_dir) as temporary:
        temporary.mkdir()
        for variant, settings in variants.items():
            sizes[variant] = convert_tflite(
                saved_model_dir=saved_model_dir,
                shards_dir=shards_dir,
                output_path=str(temporary / f"{variant}.tflite"),
                variant=variant,
                representative_examples=settings.get("representative_examples", 0),
                allow_flex=allow_flex,
            )
            log.info("%s: %d bytes", variant, sizes[variant])
    return sizes


def convert_tflite(
    *,
    saved_model_dir: str,
    shards_dir: str,
    output_path: str,
    variant: str,
    representative_examples: int = 0,
    allow_flex: bool = False,
) -> int:
    """Write one TFLite variant atomically; return its size in bytes.

    A model that needs Flex ops fails here, naming them, unless `allow_flex`.
    """
    check_saved_model(saved_model_dir)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant in ("int8", "integer_only"):
        examples, _ = load_inputs(shards_dir, "train", limit=representative_examples)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative(examples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if variant == "integer_only":
            converter.inference_input_type = tf.uint8  # the images as served: raw pixels, scale 1, zero point 0
            converter.inference_output_type = tf.int8
    elif variant != "float32":
        raise ValueError(f"tflite variant {variant!r} is not one of {', '.join(VARIANTS)}")
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # tf.lite's ConverterError; anything else is re-raised below
        needed = flex_ops_needed(str(error))
        if not needed:
            raise
        if not allow_flex:
            raise FlexOpsError(
                f"{saved_model_dir}: the {variant} TFLite model needs TF Select (Flex) ops the LiteRT builtins "
                f"lack: {', '.join(needed)}. Set convert.tflite.allow_flex: true to convert them anyway (apps "
                "then need the Flex delegate), or replace those ops in the model."
            ) from None
        log.warning("%s: converting with TF Select (Flex) ops: %s", output_path, ", ".join(needed))
        converter.target_spec.supported_ops = [*converter.target_spec.supported_ops, tf.lite.OpsSet.SELECT_TF_OPS]
        flatbuffer = converter.convert()
    with atomic_path(output_path) as temporary:
        temporary.write_bytes(flatbuffer)
    log.info("%s: %d bytes", output_path, len(flatbuffer))
    return len(flatbuffer)


def _representative(inputs: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    for index in range(count(inputs)):
        yield take(inputs, index, index + 1)


def predict_tflite(path: str, inputs: dict[str, np.ndarray], threads: int = 1) -> np.ndarray:
    """Probabilities from a TFLite model's serving signature, run by LiteRT, for served inputs.

    An integer output (integer_only) is dequantized with its own scale and zero point, so parity
    measures the numbers an app computes from it: (q - zero_point) * scale.
    """
    interpreter = Interpreter(model_path=path, num_threads=threads)
    runner = interpreter.get_signature_runner(SIGNATURE)
    outputs = runner(**{name: np.ascontiguousarray(as_numpy(values)) for name, values in inputs.items()})
    name = main_output({key: key for key in outputs})
    values = np.asarray(outputs[name])
    if np.issubdtype(values.dtype, np.integer) and name != "class_id":
        scale, zero_point = runner.get_output_details()[name]["quantization"]
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return values.astype(np.float32)


def tensor_quantization(path: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The serving signature's input and output tensors: dtype, and scale and zero point where quantized."""
    runner = Interpreter(model_path=path).get_signature_runner(SIGNATURE)
    described: dict[str, dict[str, dict[str, Any]]] = {}
    for side, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details())):
        described[side] = {}
        for name, detail in sorted(details.items()):
            scale, zero_point = detail["quantization"]
            entry: dict[str, Any] = {"dtype": np.dtype(detail["dtype"]).name}
            if scale:
                entry.update(scale=float(scale), zero_point=int(zero_point))
            described[side][name] = entry
    return described


def describe_tflite(path: str) -> dict[str, Any]:
    """Input and output tensors of a TFLite model's serving signature."""
    interpreter = Interpreter(model_path=path)
    return interpreter.get_signature_list()[SIGNATURE]


NO_FLEX_RUNTIME = (
    "it needs TF Select (Flex) ops, and neither ai_edge_litert nor tf.lite.Interpreter in Python has the Flex "
    "delegate to run it (an app links tensorflow-lite-select-tf-ops); its numbers cannot be checked here"
)


def converted_models(folder: str, inputs: Mapping[str, str], example: dict[str, np.ndarray]) -> list[ConvertedModel]:
    """The variants in the tflite step's folder, by their stem (float32, int8, ...), for parity: each with its
    Flex ops and tensor types; one converted with Flex ops (allow_flex) is not run, with why."""
    models = []
    for path in sorted(pathlib.Path(folder).glob("*.tflite")):
        flex = flex_ops_in(str(path))
        models.append(
            ConvertedModel(
                path.stem,
                functools.partial(predict_tflite, str(path)),
                bytes_on_disk(str(path)),
                functools.partial(tflite_latency_ms, str(path), example),
                facts={"flex_ops": flex} if flex else {"flex_ops": [], "tensors": tensor_quantization(str(path))},
                not_measured=NO_FLEX_RUNTIME if flex else None,
            )
        )
    return models
