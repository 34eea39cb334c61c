"""Compare two runs: the config keys that differ and how each metric changed (like `dvc exp diff`).

    python -m workflow.evaluate.compare results/runs/A/seed0 results/runs/B/seed0 [--json]

A run folder holds train.json (its resolved model and train config: `params`) and metrics.json (the
test split's figures). Keys are dotted paths (`train.optimizer.learning_rate`); a key only one run has
shows `-` for the other. Metrics are the numbers of metrics.json both runs have, with B - A; the
per-class lists and the confusion matrix are left out. Reads JSON only: no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

from workflow.config.values import is_number
from workflow.infra.atomic import read_json

MISSING = "-"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: leaf value} of nested mappings; lists are leaves."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in value.items():
        flat.update(flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def read_run(folder: pathlib.Path) -> dict[str, Any]:
    """A run's config (train.json's params, plus its seed) and metrics; a missing file is named."""
    for name in ("train.json", "metrics.json"):
        if not (folder / name).is_file():
            raise SystemExit(f"{folder}: no {name}; give a finished run's folder (results/runs/<experiment>/seed<k>)")
    train = read_json(folder / "train.json")
    config = {**flatten(train["params"]), "seed": train["seed"]}
    return {"config": config, "metrics": read_json(folder / "metrics.json")}


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The differing config keys ({key: [a, b]}) and every number of both metrics.json ({key: [a, b, b - a]})."""
    keys = sorted(set(a["config"]) | set(b["config"]))
    config = {
        key: [a["config"].get(key, MISSING), b["config"].get(key, MISSING)]
        for key in keys
        if a["config"].get(key, MISSING) != b["config"].get(key, MISSING)
    }
    metrics = {}
    for key in sorted(set(a["metrics"]) & set(b["metrics"])):
        first, second = a["metrics"][key], b["metrics"][key]
        numbers = is_number(first) and is_number(second)
        if numbers:
            metrics[key] = [first, second, second - first]
    return {"config": config, "metrics": metrics}


def to_text(a_name: str, b_name: str, result: dict[str, Any]) -> str:
    lines = [f"A: {a_name}", f"B: {b_name}", "", "config (keys that differ):"]
    width = max([len(key) for key in result["config"]] + [len("key")])
    lines += [f"  {key:<{width}}  {first!s:>12}  ->  {second!s}" for key, (first, second) in result["config"].items()]
    if not result["config"]:
        lines.append("  (none: the same config)")
    lines += ["", "metrics (test split):"]
    width = max([len(key) for key in result["metrics"]] + [len("key")])
    for key, (first, second, change) in result["metrics"].items():
        lines.append(f"  {key:<{width}}  {first:>12.6g}  ->  {second:<12.6g}  ({change:+.6g})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.evaluate.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=pathlib.Path, help="a run folder, e.g. results/runs/lenet5/seed0")
    parser.add_argument("b", type=pathlib.Path, help="the run folder to compare it with")
    parser.add_argument("--json", action="store_true", help="print the difference as JSON")
    arguments = parser.parse_args(argv)
    result = diff(read_run(arguments.a), read_run(arguments.b))
    if arguments.json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
    else:
        sys.stdout.write(to_text(str(arguments.a), str(arguments.b), result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
