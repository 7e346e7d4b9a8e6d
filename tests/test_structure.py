"""The shape of the code that the next engineer relies on: one storage registry, no import
cycles, queries that never reach the write path, exceptions in one module, small modules and
functions."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from sanctum_store import errors, models

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sanctum_store"
MODULES = {
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
    for path in sorted(PACKAGE.rglob("*.py"))
}
#: Modules over ~800 lines: the schema mirrors esper's one schema module (its contract).
LONG_MODULES = {"sanctum_store.schema"}


def imports_of(module: str) -> set[str]:
    """The package modules ``module`` imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != "sanctum_store":  # ``from sanctum_store import codec``: codec
                found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in MODULES and name != module}


def test_every_table_declares_its_storage_role():
    assert set(models.ROLES) == set(models.TABLES)
    for name, role in models.ROLES.items():
        assert role.kind in models.ROLE_KINDS, name
        if role.items is not None:
            assert models.ROLES[role.items.table].kind == "item", name
        if role.kind == "keyed":
            assert models.ROLES[role.key.link_table].kind == "link", name
        if role.kind == "value":
            assert {"run_pk", "digest"} <= set(models.TABLES[name].c.keys()), name


def test_writing_and_reading_name_no_table_in_a_branch():
    """persist and reader are driven by the registry: no ``if table == "..."`` chains."""
    for module in ("sanctum_store.persist", "sanctum_store.reader"):
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            if isinstance(node, ast.Compare):
                literals = [
                    c.value
                    for c in [node.left, *node.comparators]
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                ]
                assert not set(literals) & set(models.TABLES), (module, node.lineno)


def test_the_package_has_no_import_cycle():
    graph = {module: imports_of(module) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in graph[module]:
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_queries_never_reach_the_write_path():
    writing = {"sanctum_store.archive", "sanctum_store.persist", "sanctum_store.writer"}
    for module in MODULES:
        if module.startswith("sanctum_store.queries"):
            assert not imports_of(module) & writing, module


def test_exceptions_live_in_errors():
    for module, path in MODULES.items():
        if module == "sanctum_store.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {ast.unparse(b) for b in node.bases}
                assert not any("Error" in b or "Exception" in b for b in bases), (
                    f"{module}.{node.name}"
                )
    public = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and obj.__module__ == errors.__name__
    ]
    assert all(issubclass(cls, errors.SanctumError) for cls in public)


def test_modules_and_functions_stay_small():
    for base in ("sanctum_store", "explorer"):
        for path in sorted((ROOT / base).rglob("*.py")):
            text = path.read_text()
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if name not in LONG_MODULES:
                assert text.count("\n") <= 800, name
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    assert node.end_lineno - node.lineno < 80, f"{name}.{node.name}"


def test_storage_forms_live_in_forms():
    """The sign of -0.0, UTC conversion and NaN in JSON are handled in one module."""
    for module, path in MODULES.items():
        text = path.read_text()
        for token in ("copysign", "astimezone(UTC)", "$float"):
            assert module == "sanctum_store.forms" or token not in text, (module, token)
