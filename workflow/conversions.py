"""Which conversions a model can take, decided from the config alone (no TensorFlow import).

The DAG is built from this, so `snakemake -n` already shows a skipped conversion and its reason (in
the parity job's message) instead of a job failing late. What the converters refuse was measured
on FeatureSpace models with each feature type (tensorflow 2.21, LiteRT 2.3, tensorflowjs 4.22; see
docs/configuration.md "Tables"). Image models and the decision forests (exported as plain
TensorFlow ops: Gather, Select, GreaterEqual, see workflow/forests.py) take every conversion.
"""

from __future__ import annotations

from typing import Any

from workflow import usercode
from workflow.catalog import family

# The TensorFlow ops each FeatureSpace type adds that the LiteRT builtins lack (TF Select needed), with
# its default one-hot output; tests/test_tables.py checks each against the converter.
TFLITE_FLEX_OPS = {
    "float_discretized": "DenseBincount",
    "integer_categorical": "HashTableV2, LookupTableFindV2, LookupTableImportV2, DenseBincount",
    "string_categorical": "DenseBincount",
    "integer_hashed": "AsString, StringToHashBucketFast, DenseBincount",
    "string_hashed": "StringToHashBucketFast, DenseBincount",
    "cross": "SparseCross, DenseBincount",
}
# Why tensorflowjs_converter 4.22 cannot take a FeatureSpace type.
TFJS_PROBLEMS = {
    "float_discretized": "the converter does not support op Bucketize",
    "integer_categorical": "lookup tables do not convert (the converter fails: 'Identity is not in graph')",
    "string_categorical": "lookup tables do not convert (the converter fails: 'Identity is not in graph')",
    "integer_hashed": "the converter does not support op AsString",
    "string_hashed": "StringToHashBucketFast was not verified with TF.js, so it is not attempted",
    "cross": "the converter does not support op SparseCross",
}


INTEGER_ONLY_NEEDS_IMAGES = (
    "integer-only TFLite takes integer inputs, and a table's served inputs are float32, int64 and string "
    "columns; the int8 variant quantizes the model inside and keeps them"
)


def feature_types(model: dict[str, Any]) -> dict[str, str]:
    """Feature (or "cross <a> x <b>") -> its FeatureSpace type, for a table model's config.

    Without `model.features` every column gets the default of its dtype, which the config does
    not know: "(every column)" then stands for a categorical default, the type that limits most.
    """
    listed = model.get("features")
    if listed:
        types = {name: setting if isinstance(setting, str) else setting["type"] for name, setting in listed.items()}
    else:
        types = {"(every column, defaults by dtype)": "integer_categorical"}
    for cross in model.get("crosses") or []:
        types["cross " + " x ".join(cross["features"])] = "cross"
    return types


def skipped_conversions(model: dict[str, Any], allow_flex: bool, tfjs_wanted: bool) -> dict[str, str]:
    """Format ("tflite", "tflite:<variant>", "tfjs") -> why this model is not converted to it; {} when all are."""
    if model.get("code"):  # the user's builder says what its layers cannot take (usercode.declared_skips)
        return usercode.declared_skips(model["code"])
    if family(model) == "forest":
        why = (
            "quantization does not fit a tree evaluator: it would round the thresholds the trees compare with, and the "
            "leaves' sentinel threshold (+inf) has no int8 scale (the converter fails: 'scale out of expressed type "
            "range'); the float32 and float16 variants convert"
        )
        return {"tflite:dynamic_range": why, "tflite:int8": why, "tflite:integer_only": why}
    if family(model) != "table":
        return {}
    types = feature_types(model)
    skipped = {}
    flex = {name: kind for name, kind in types.items() if kind in TFLITE_FLEX_OPS}
    if flex and not allow_flex:
        listed = "; ".join(f"{name} ({kind}: {TFLITE_FLEX_OPS[kind]})" for name, kind in flex.items())
        skipped["tflite"] = (
            f"the LiteRT builtins lack ops these features need: {listed}. convert.tflite.allow_flex: true converts "
            f"them with TF Select ops (apps then need the Flex delegate); float and float_normalized features convert"
        )
    problems = {name: kind for name, kind in types.items() if kind in TFJS_PROBLEMS}
    if tfjs_wanted and problems:
        listed = "; ".join(f"{name} ({kind}: {TFJS_PROBLEMS[kind]})" for name, kind in problems.items())
        skipped["tfjs"] = f"TF.js cannot run these features: {listed}"
    if "tflite" not in skipped:
        skipped["tflite:integer_only"] = INTEGER_ONLY_NEEDS_IMAGES
    return skipped
