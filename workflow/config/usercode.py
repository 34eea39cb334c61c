"""A researcher's own code, named in the config: checked without running it, digested, then imported by the job.

A reference is a mapping with the file (or an importable module) and the name of what it defines:

    code: {file: my_project/model.py, function: build_tiny_vit}      # model.code, train.augment.code
    code: {module: my_project.model, function: build_tiny_vit}       # the same, found on the module path
    code: {file: my_project/shapes.py, class: Shapes}                # datasets.<key>.code (a tfds builder)

Paths are relative to the working directory (where snakemake runs), like every path in a config.
While the DAG is built nothing of the user's code runs: the file is parsed (`ast`), the name must be a
top-level `def` or `class` of it, and a function's parameters must start with the contract's names
(`input_shape, num_classes` for a model builder, `images, seed` for an augmentation) and take the
options the config gives it. That contract is also why a config from a stranger cannot call an
arbitrary function of the standard library or of an installed package through this door.

The digest (`digest`) covers the file and every module it imports from its own folder, so an edit
to either reruns the steps that run it, and nothing else does.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.resources.readers
import importlib.util
import os
import pathlib
import re
import sys
from collections.abc import Sequence
from typing import Any

# The parameters a function must start with, by what it is for.
MODEL_BUILDER = ("input_shape", "num_classes")
AUGMENTATION = ("images", "seed")


class UserCodeError(ValueError):
    """A `code` reference of the config that does not name a usable file and function or class."""


def kind(ref: dict[str, Any]) -> str:
    """ "function" or "class": what the reference names."""
    return "class" if "class" in ref else "function"


def locate(ref: dict[str, Any], where: str) -> pathlib.Path:
    """The file of `ref` ({file} or {module}); raises naming the config key `where` when it is not there."""
    if "file" in ref:
        path = pathlib.Path(ref["file"])
        if path.suffix != ".py":
            raise UserCodeError(f"{where}.file: {ref['file']} must be a Python file (.py)")
        if not path.is_file():
            raise UserCodeError(f"{where}.file: {ref['file']} does not exist (paths are relative to {os.getcwd()})")
        return path
    module = ref["module"]
    relative = pathlib.Path(*module.split("."))
    # The working directory, then PYTHONPATH: where a researcher's own package lives (not site-packages).
    folders = [pathlib.Path(".")] + [pathlib.Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for folder in folders:
        for candidate in (folder / relative.with_suffix(".py"), folder / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise UserCodeError(
        f"{where}.module: {module} is not found as {relative}.py or {relative}/__init__.py in the working "
        f"directory or PYTHONPATH"
    )


def check(
    ref: dict[str, Any], where: str, leading: tuple[str, ...] = (), options: dict[str, Any] | None = None
) -> pathlib.Path:
    """Refuse, naming `where`, a reference whose file, name or signature does not fit; return the file.

    For a function: its first parameters must be `leading`, every key of `options` must be one of
    its other parameters (or it takes **kwargs), and each of those without a default must be given.
    """
    path = locate(ref, where)
    name = ref[kind(ref)]
    definition = _definitions(path).get(name)
    wanted = ast.ClassDef if kind(ref) == "class" else (ast.FunctionDef, ast.AsyncFunctionDef)
    if not isinstance(definition, wanted):
        found = sorted(key for key, node in _definitions(path).items() if isinstance(node, wanted))
        raise UserCodeError(
            f"{where}.{kind(ref)}: {path} defines no top-level {kind(ref)} {name!r} "
            f"(it defines: {', '.join(found) or 'none'})"
        )
    if isinstance(definition, ast.ClassDef):
        return path
    _check_signature(definition, f"{where} ({path}, {name})", leading, options or {})
    return path


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.expr | None]]:
    """(name, default expression or None) of each parameter that can be passed by name, in order."""
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)  # the last ones
    named = list(zip(positional, defaults, strict=True)) + list(
        zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    )
    return [(argument.arg, default) for argument, default in named]


def _check_signature(
    function: ast.FunctionDef | ast.AsyncFunctionDef, where: str, leading: tuple[str, ...], options: dict[str, Any]
) -> None:
    parameters = _parameters(function)
    names = [name for name, _ in parameters]
    if tuple(names[: len(leading)]) != leading:
        raise UserCodeError(
            f"{where}: its parameters must start with {', '.join(leading)} (it has {', '.join(names) or 'none'})"
        )
    taken = dict(parameters[len(leading) :])
    unknown = sorted(set(options) - set(taken))
    if unknown and function.args.kwarg is None:
        raise UserCodeError(
            f"{where}: unknown option {', '.join(unknown)} (it takes: {', '.join(taken) or 'no options'})"
        )
    missing = sorted(key for key, default in taken.items() if default is None and key not in options)
    if missing:
        raise UserCodeError(f"{where}: missing option {', '.join(missing)} (it has no default)")


def option_defaults(ref: dict[str, Any]) -> dict[str, Any]:
    """Option -> its default in the function's signature (a literal; None where there is none or it is not one)."""
    function = _definitions(locate(ref, "code")).get(ref.get("function", ""))
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {}
    return {name: _literal(default) for name, default in _parameters(function)}


def _literal(node: ast.expr | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


@functools.cache
def _tree(path: pathlib.Path) -> ast.Module:
    """The parsed file, once per process (the DAG asks about each experiment's skips several times)."""
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as error:
        raise UserCodeError(f"{path} does not parse as Python: {error}") from None


def _definitions(path: pathlib.Path) -> dict[str, ast.AST]:
    return {
        node.name: node
        for node in _tree(path).body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


# A model builder's file may say which conversions its layers cannot take, as a literal at its top level:
#     SKIP_CONVERSIONS = {"tfjs": "TF.js has no kernel for the Einsum this attention uses"}
# Keys: "tflite" (every variant), "tflite:<variant>", "tfjs" (workflow/deploy/formats.py SKIP_KEYS). Read with
# ast.literal_eval, so it is data.
SKIP_CONVERSIONS = "SKIP_CONVERSIONS"


def declared_skips(ref: dict[str, Any], known: Sequence[str], where: str = "code") -> dict[str, str]:
    """Format -> reason, from the file's SKIP_CONVERSIONS ({} without one); refused when it is not such a dict
    or names a key not in `known`."""
    path = locate(ref, where)
    for node in _tree(path).body:
        expression: ast.expr | None
        if isinstance(node, ast.Assign):
            targets, expression = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, expression = [node.target], node.value
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == SKIP_CONVERSIONS for target in targets):
            try:
                value = ast.literal_eval(expression) if expression is not None else None
            except ValueError:
                value = None
            if not isinstance(value, dict) or not all(isinstance(reason, str) and reason for reason in value.values()):
                raise UserCodeError(f"{path}: {SKIP_CONVERSIONS} must be a literal dict of format -> reason (text)")
            unknown = sorted(set(value) - set(known))
            if unknown:
                raise UserCodeError(
                    f"{path}: {SKIP_CONVERSIONS} names unknown formats {unknown} (known: {', '.join(known)})"
                )
            return dict(value)
    return {}


def files(path: pathlib.Path, root: pathlib.Path | None = None) -> list[pathlib.Path]:
    """`path` and the modules it imports from `root` (its own folder by default), transitively, sorted."""
    root = root or path.parent
    seen: set[pathlib.Path] = set()
    pending = [path]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(_local_imports(current, root))
    return sorted(seen)


def _local_imports(path: pathlib.Path, root: pathlib.Path) -> list[pathlib.Path]:
    try:
        tree = _tree(path)
    except UserCodeError:
        return []  # `check` reports it for the named file; a broken imported file fails in the job
    names: list[tuple[str, pathlib.Path]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((alias.name, root) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = root if node.level == 0 else path.parent.joinpath(*[".."] * (node.level - 1))
            module = node.module or ""
            names.extend((f"{module}.{alias.name}".strip("."), base) for alias in node.names)
            if module:
                names.append((module, base))
    found = []
    for name, base in names:
        relative = pathlib.Path(*name.split("."))
        for candidate in (base / relative.with_suffix(".py"), base / relative / "__init__.py"):
            if candidate.is_file():
                found.append(candidate)
    return found


def digest(*refs: dict[str, Any] | None) -> str:
    """16 hex digits over the path and content of every file the references run ("" for none)."""
    paths = sorted({file for ref in refs if ref for file in _files_of(*_file_and_root(ref))})
    return _digest_of(tuple(paths)) if paths else ""


def _file_and_root(ref: dict[str, Any]) -> tuple[pathlib.Path, pathlib.Path]:
    """The reference's file and the folder its imports start from: its own, or the top of its package."""
    path = locate(ref, "code")
    if "module" not in ref:
        return path, path.parent
    return path, path.parents[len(ref["module"].split(".")) - 1 + (path.name == "__init__.py")]


# Per process (a DAG build reads each file once, however many experiments share it).
_files_of = functools.cache(files)


@functools.cache
def _digest_of(paths: tuple[pathlib.Path, ...]) -> str:
    hashed = hashlib.sha256()
    for path in paths:
        hashed.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return hashed.hexdigest()[:16]


def load(ref: dict[str, Any]) -> Any:
    """Import the reference's module and return the name it defines. Run by the job, never while the DAG is built.

    A file is imported as a module of a package made for its folder (so tfds finds a builder's
    folder, as for its own datasets), and the folder goes first on sys.path, so that its plain
    imports of neighbouring files (`from layers import ...`) resolve.
    """
    path, root = (part.resolve() for part in _file_and_root(ref))
    if "module" in ref:
        _first_on_path(root)
        return getattr(importlib.import_module(ref["module"]), ref[kind(ref)])
    _first_on_path(path.parent)
    package = _folder_package(path.parent)
    return getattr(importlib.import_module(f"{package}.{path.stem}"), ref[kind(ref)])


def _folder_package(folder: pathlib.Path) -> str:
    """The name of a package whose one folder is `folder` (made on first use)."""
    readable = re.sub(r"\W", "_", folder.name)
    name = f"tfl_user_{readable}_{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, _FolderPackage(folder), is_package=True)
        spec.submodule_search_locations = [str(folder)]
        sys.modules[name] = importlib.util.module_from_spec(spec)
    return name


class _FolderPackage(importlib.abc.Loader):
    """An empty package for a folder; its resources are the folder's files (tfds reads a builder's there)."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.path = str(folder / "__init__.py")  # FileReader serves the folder of this path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        return None

    def get_resource_reader(self, name: str) -> Any:
        return importlib.resources.readers.FileReader(self)  # type: ignore[arg-type]  # it reads only .path


def _first_on_path(folder: pathlib.Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
