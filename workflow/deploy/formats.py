"""The deployment formats: one entry each in FORMATS, the one list the DAG, parity, the gate and publish loop over.

A format is
- its entry here: its name, the models it writes, what its rule is given, what else parity needs to run
  it, and which models a config's model cannot take and why. All of it is decided from the config alone,
  without importing TensorFlow: the DAG is built from it, so `snakemake -n` already shows a skipped
  conversion and its reason (in the parity job's message) instead of a job failing late;
- its module (`runtime`: workflow/deploy/tflite.py, workflow/deploy/tfjs.py): the conversion its rule runs, and
  `converted_models(folder, inputs, example)`, the models parity measures (workflow/deploy/converted.py);
- its rule, writing `<run>/<name>/` from the SavedModel (rules/convert.smk);
- its schema entries: the section `convert.<name>` and a `parity.budgets` entry for each model it writes.
The name is the rule's, the run folder's, the config section's and the published folder's
(results/deploy/<experiment>/<name>/). tests/test_config.py (test_the_schema_and_the_formats_agree) checks
that the schema, the rules and this list agree, and
test_a_new_format_is_its_entry_its_module_its_rule_and_its_schema_section adds one to a copy of the repository.

What the converters refuse was measured on FeatureSpace models with each feature type (tensorflow
2.21, LiteRT 2.3, tensorflowjs 4.22; see docs/configuration.md "Tables"). Image models and the
decision forests (exported as plain TensorFlow ops: Gather, Select, GreaterEqual, see
workflow/models/forests.py) take every conversion but the forests' quantized TFLite variants.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from workflow.config import usercode
from workflow.deploy.converted import ConvertedModel
from workflow.models.catalog import family


@dataclasses.dataclass(frozen=True)
class Format:
    """A deployment format (see the module's docstring for what else makes one).

    models: every model it can write, by the name parity.json and the budgets use (one per TFLite variant).
    chosen: the models its `convert.<name>` section asks for.
    params: its rule's settings, from its section and the models it writes (those the model can take).
    cannot_take: (the experiment's `model` section, its `convert` section) -> {key: why}, the conversions the model
        cannot take; a key is the format's name (all of its models) or `<name>:<model>`.
    parity_inputs: files parity needs to run its models, by input name (paths under results/).
    runtime: the module with its conversion and `converted_models`, imported by those steps only.
    files: files of the package its steps read besides Python modules (in their code digests).
    """

    name: str
    models: tuple[str, ...]
    chosen: Callable[[dict[str, Any]], list[str]]
    params: Callable[[dict[str, Any], list[str]], dict[str, Any]]
    cannot_take: Callable[[dict[str, Any], dict[str, Any]], dict[str, str]]
    parity_inputs: tuple[tuple[str, str], ...]
    runtime: str
    files: tuple[str, ...] = ()

    def skip_keys(self) -> tuple[str, ...]:
        """The keys a skip may have: the format, and each of its models when it writes several."""
        return (self.name, *(f"{self.name}:{model}" for model in self.models if model != self.name))


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
QUANTIZED_TREES = (
    "quantization does not fit a tree evaluator: it would round the thresholds the trees compare with, and the "
    "leaves' sentinel threshold (+inf) has no int8 scale (the converter fails: 'scale out of expressed type "
    "range'); the float32 and float16 variants convert"
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


def _tflite_cannot_take(model: dict[str, Any], convert: dict[str, Any]) -> dict[str, str]:
    if family(model) == "forest":
        return {f"tflite:{variant}": QUANTIZED_TREES for variant in ("dynamic_range", "int8", "integer_only")}
    if family(model) != "table":
        return {}
    flex = {name: kind for name, kind in feature_types(model).items() if kind in TFLITE_FLEX_OPS}
    if flex and not convert["tflite"]["allow_flex"]:
        listed = "; ".join(f"{name} ({kind}: {TFLITE_FLEX_OPS[kind]})" for name, kind in flex.items())
        return {
            "tflite": f"the LiteRT builtins lack ops these features need: {listed}. convert.tflite.allow_flex: true "
            f"converts them with TF Select ops (apps then need the Flex delegate); float and float_normalized "
            f"features convert"
        }
    return {"tflite:integer_only": INTEGER_ONLY_NEEDS_IMAGES}


def _tflite_params(section: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """Only int8 and integer_only calibrate, so only they get a count (a change of it reruns nothing else)."""
    calibrated = ("int8", "integer_only")
    variants = {
        variant: {"representative_examples": section["representative_examples"]} if variant in calibrated else {}
        for variant in models
    }
    return {"allow_flex": section["allow_flex"], "variants": variants}


def _tfjs_cannot_take(model: dict[str, Any], convert: dict[str, Any]) -> dict[str, str]:
    if family(model) != "table":
        return {}
    problems = {name: kind for name, kind in feature_types(model).items() if kind in TFJS_PROBLEMS}
    if not problems:
        return {}
    listed = "; ".join(f"{name} ({kind}: {TFJS_PROBLEMS[kind]})" for name, kind in problems.items())
    return {"tfjs": f"TF.js cannot run these features: {listed}"}


FORMATS: tuple[Format, ...] = (
    Format(
        name="tflite",
        models=("float32", "float16", "dynamic_range", "int8", "integer_only"),
        chosen=lambda section: list(section["variants"]),
        params=_tflite_params,
        cannot_take=_tflite_cannot_take,
        parity_inputs=(),
        runtime="workflow.deploy.tflite",
    ),
    Format(
        name="tfjs",
        models=("tfjs",),
        chosen=lambda section: ["tfjs"] if section["enabled"] else [],
        params=lambda section, models: {},
        cannot_take=_tfjs_cannot_take,
        parity_inputs=(("node_env", "envs/node.json"),),  # Node.js and the pinned @tensorflow/tfjs
        runtime="workflow.deploy.tfjs",
        files=("deploy/js/tfjs_predict.cjs", "deploy/js/demo.html"),
    ),
)
BY_NAME = {fmt.name: fmt for fmt in FORMATS}
RUNTIME_MODULES = tuple(fmt.runtime for fmt in FORMATS)
RUNTIME_FILES = tuple(file for fmt in FORMATS for file in fmt.files)
SKIP_KEYS = tuple(key for fmt in FORMATS for key in fmt.skip_keys())


def skipped_conversions(model: dict[str, Any], convert: dict[str, Any]) -> dict[str, str]:
    """Skip key ("tflite", "tflite:<variant>", "tfjs") -> why this model is not converted to it, for the
    conversions its `convert` section asks for; {} when it takes them all."""
    # The user's builder says what its layers cannot take (usercode.declared_skips); a built-in, each format.
    declared = usercode.declared_skips(model["code"], SKIP_KEYS) if model.get("code") else None
    skipped = {}
    for fmt in FORMATS:
        wanted = fmt.chosen(convert[fmt.name])
        refused = fmt.cannot_take(model, convert) if declared is None else declared
        for key, reason in refused.items():
            name, _, one = key.partition(":")
            if name == fmt.name and wanted and (not one or one in wanted):
                skipped[key] = reason
    return skipped


def converted(model: dict[str, Any], convert: dict[str, Any]) -> dict[str, list[str]]:
    """Format name -> the models written for it (those asked for that the model can take); formats with none
    are left out, so no job converts to them."""
    skipped = skipped_conversions(model, convert)
    written = {}
    for fmt in FORMATS:
        models = [m for m in fmt.chosen(convert[fmt.name]) if not {fmt.name, f"{fmt.name}:{m}"} & set(skipped)]
        if models:
            written[fmt.name] = models
    return written


def converted_models(folders: Mapping[str, str], example: dict[str, Any]) -> list[ConvertedModel]:
    """Every model in the formats' folders (`folders`: format name -> its folder, and the parity inputs),
    in the order of FORMATS, each format's as its runtime lists them."""
    models: list[ConvertedModel] = []
    for fmt in FORMATS:
        if fmt.name in folders:
            models += importlib.import_module(fmt.runtime).converted_models(folders[fmt.name], folders, example)
    return models
