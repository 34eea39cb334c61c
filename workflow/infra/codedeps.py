"""Which files of the `workflow` package a step imports, and a digest of their content.

Each rule carries the digest of the modules its step imports (found by reading import statements,
transitively, without importing anything) as its `code` param, and Snakemake reruns a job whose
params changed: an edit to workflow/models/images.py reruns training and what follows, and leaves
download untouched. A digest rather than the files as inputs: Snakemake's cost per job grows
with its input files (about 3 times a bare Snakefile's dry run at 1000 experiments with ~10 code
files per job: docs/performance.md), and touching a file without changing it reruns nothing.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import pathlib

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent.parent  # workflow/, this file being workflow/infra/codedeps.py
PACKAGE = PACKAGE_ROOT.name


def code_files(*modules: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Sorted repository-relative paths of `modules` and every package module they import."""
    found: set[pathlib.Path] = set()
    for module in modules:
        found |= _closure(module)
    repo = PACKAGE_ROOT.parent
    paths = {str(path.relative_to(repo)) for path in found} | {f"{PACKAGE}/{name}" for name in extra}
    return sorted(paths)


@functools.cache
def code_digest(*modules: str, extra: tuple[str, ...] = ()) -> str:
    """16 hex digits of sha256 over the path and content of every file `code_files` names."""
    digest = hashlib.sha256()
    for relative in code_files(*modules, extra=extra):
        digest.update(relative.encode() + b"\0" + (PACKAGE_ROOT.parent / relative).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _closure(module: str) -> frozenset[pathlib.Path]:
    seen: set[pathlib.Path] = set()
    pending = [module]
    while pending:
        path = _module_path(pending.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        pending.extend(_imports(path))
    return frozenset(seen)


def _module_path(module: str) -> pathlib.Path | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache  # the rules' closures share most files: each is parsed once per DAG build
def _imports(path: pathlib.Path) -> list[str]:
    """Package modules named by the file's imports, and the packages that contain them."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    parents = {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 1)}
    return [name for name in [*names, *parents] if name.split(".")[0] == PACKAGE]
