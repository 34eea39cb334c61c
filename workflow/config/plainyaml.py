"""Config files as plain data: a strict YAML loader and a check of what any loader handed over.

A config may come from a stranger (a paper's authors, a colleague), so it must be data and nothing
else. Snakemake 9 loads every `--configfile` itself before this workflow runs, with YTE and PyYAML's
FullLoader: a file with `__use_yte__: true` has its `?expr` values evaluated as Python, and
`!!python/name:` tags build Python objects. The workflow cannot stop that load (it happens before
the Snakefile is read), so the Snakefile reads every config file again with `load_plain_yaml` and
refuses what Snakemake should not have accepted, and `python -m workflow.config FILE` checks a file
without ever evaluating it. docs/reliability.md says exactly what a config file can do.

`check_plain` then bounds what reaches the schema, whatever loaded it (`--config` on the command
line included): a YAML alias bomb, keys that YAML 1.1 turned into booleans or numbers (`no:`),
NaN and infinity, and control characters.
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import Any

import yaml

# Snakemake's switch that turns a config file into a YTE template of Python expressions.
YTE_MARKER = "__use_yte__"
# Values a config may hold before the schema sees it: a real one has a few thousand even with a
# thousand experiments; an alias bomb reaches this at once, so the check stops in milliseconds.
MAX_VALUES = 1_000_000
MAX_DEPTH = 32
MAX_SHOWN = 80  # characters of a bad value quoted in a message
# C0 control characters and DEL; tab and newline are allowed here and judged per key by the schema.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# PyYAML refuses a plain (implicit) mapping key longer than this with a bare "mapping values are not allowed".
YAML_KEY_LIMIT = 1024


class ConfigError(ValueError):
    """A config that is not plain data or does not follow configs/schema.yaml; the message names key or file."""


def shown(value: Any) -> str:
    """`repr(value)` cut to MAX_SHOWN characters, so a message stays readable whatever the value."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} characters)"


# libyaml's parser where PyYAML has it: the Snakefile reads every config file again, and the pure-Python
# parser takes a second for a 1000-experiment file (the construction, which enforces safety, is Python).
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeBase):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader that also refuses a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` then overriding a key is not a repeat
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # an unhashable key (a list or mapping used as a key)
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain name, not a list or mapping", key_node.start_mark
                ) from None
            if earlier is not key_node:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {shown(key)} is written twice in one mapping (lines {earlier.start_mark.line + 1} and "
                    f"{key_node.start_mark.line + 1}); YAML would silently keep only the second",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_plain_yaml(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a config file as plain data: safe tags only, no key twice, no YTE; errors name file and line."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file: {error}") from None
    if re.search(rf"^{YTE_MARKER}\s*:", text, flags=re.MULTILINE):
        raise ConfigError(
            f"{path}: {YTE_MARKER} makes Snakemake evaluate the file's '?' values as Python code while it loads "
            "it, before this workflow can check it; a tf-lifecycle config is plain YAML, so it is refused. If you "
            "did not write this file, its code has already run if it was given to `snakemake`; check files from "
            "others with `python -m workflow.config FILE` first, which never evaluates anything"
        )
    try:
        with open(path, encoding="utf-8") as handle:  # a stream, so that error marks name the file
            loader = _StrictLoader(handle)
            try:
                loaded = loader.get_single_data()
            finally:
                loader.dispose()
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not a plain YAML config: {error}{_key_length_hint(text)}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(loaded).__name__}")
    return loaded


def _key_length_hint(text: str) -> str:
    """Say so when a key over YAML's length limit is the likely cause of a parse error."""
    if re.search(rf"[^\s:{{}},\[\]]{{{YAML_KEY_LIMIT + 1},}}\s*:", text):
        return (
            f"\n(a key is longer than {YAML_KEY_LIMIT} characters, YAML's limit for a plain key; "
            "names in this config have at most 64)"
        )
    return ""


def check_plain(value: Any, where: str = "config") -> None:
    """Refuse what no schema should have to see: too many values, non-text keys, NaN/inf, control characters."""
    budget = [MAX_VALUES]
    _check(value, where, 0, budget)


def _check(value: Any, where: str, depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"{where}: the config holds more than {MAX_VALUES:,} values (YAML aliases that repeat each other, "
            "an 'alias bomb'?); refused before it is expanded"
        )
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(_key_problem(where, key))
            _check_text(key, f"{where}: the key {shown(key)}")
            if has_line_break(key):
                raise ConfigError(f"{where}: the key {shown(key)} holds a line break")
            _check(item, f"{where}.{key}" if where != "config" else key, depth + 1, budget)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]", depth + 1, budget)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    elif isinstance(value, str):
        _check_text(value, f"{where}: {shown(value)}")


def has_line_break(text: str) -> bool:
    """A line break of any kind Python knows (\n, \r, \x85, \u2028, ...), a trailing one included."""
    return len(f"{text}x".splitlines()) > 1


def _check_text(text: str, what: str) -> None:
    if CONTROL.search(text):
        raise ConfigError(f"{what} holds a control character")


def _key_problem(where: str, key: Any) -> str:
    if isinstance(key, bool):
        return (
            f"{where}: a key was read as the boolean {key} (YAML 1.1 reads unquoted yes/no/on/off/true/false as "
            f'booleans): quote it, e.g. "{"yes" if key else "no"}":'
        )
    return f"{where}: the key {shown(key)} is a {type(key).__name__}, not a name: quote it"
