"""The shape of the library, checked: layers that only point down, small modules and functions, no hasattr.

Layers (DESIGN.md): foundation -> data -> models/eval -> strategies/bases -> train -> runs ->
experiments/insights -> cli. A module may import its own layer or any layer below, never above, at
module level or inside a function. Function-level imports are allowed only for optional heavy
dependencies that must stay lazy, and each says why in a comment on its line or the line above.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "recsys_core"
LAYERS = {  # module prefix -> layer; the longest matching prefix wins
    "recsys_core.errors": 0, "recsys_core.config_fields": 0, "recsys_core.registry": 0, "recsys_core.paths": 0, "recsys_core.storage": 0,
    "recsys_core.data": 1, "recsys_core.text": 1, "recsys_core.images": 1,
    "recsys_core.models": 2, "recsys_core.eval": 2,
    "recsys_core.strategies": 3, "recsys_core.bases": 3, "recsys_core.item_init": 3,
    "recsys_core.train": 4,
    "recsys_core.runs": 5,
    "recsys_core.experiments": 6, "recsys_core.insights": 6, "recsys_core.recommend": 6,
    "recsys_core.compress": 6, "recsys_core.serving": 6, "recsys_core.uploads": 6, "recsys_core.pipeline": 6,
    "recsys_core.cli": 7, "recsys_core.__main__": 7, "recsys_core": 7,
}
# Optional or heavy dependencies a function may import lazily (each such import carries a comment saying why).
LAZY_OK = ("transformers", "peft", "huggingface_hub", "torch.distributed", "torch.nn.utils.prune", "torch.ao",
           "torch._dynamo", "mlflow", "importlib", "sklearn", "pyarrow", "PIL")
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return best[1] if best else None


def _imports(tree: ast.AST, module: str, is_package: bool):
    """(imported module, line, inside a function) for every import of a recsys_core module or any other."""
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def in_function(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return True
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, in_function(node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            for alias in node.names:  # `from recsys_core.models import sasrec` imports a module too
                full = f"{name}.{alias.name}"
                yield (full if _is_module(full) else name), node.lineno, in_function(node)


def _is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _parsed():
    for module, path in _modules().items():
        source = path.read_text()
        yield module, path, source, ast.parse(source)


def test_every_module_has_a_layer() -> None:
    assert [m for m in _modules() if layer_of(m) is None] == []


def test_imports_only_point_down() -> None:
    upward = []
    for module, path, _, tree in _parsed():
        mine = layer_of(module)
        for name, line, _ in _imports(tree, module, path.name == "__init__.py"):
            if name.startswith("recsys_core") and layer_of(name) is not None and layer_of(name) > mine:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert upward == []


def test_function_level_imports_are_lazy_dependencies_with_a_reason() -> None:
    bad = []
    for module, path, source, tree in _parsed():
        lines = source.splitlines()
        for name, line, inside in _imports(tree, module, path.name == "__init__.py"):
            if not inside:
                continue
            reason = "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
            if not name.startswith(LAZY_OK) or not reason:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} inside a function")
    assert bad == []


def test_modules_and_functions_are_small() -> None:
    big = []
    for module, path, source, tree in _parsed():
        n = len(source.splitlines())
        if n > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(ROOT)}: {n} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert big == []


def test_no_capability_discovery_with_hasattr() -> None:
    found = [f"{path.relative_to(ROOT)}:{node.lineno}" for _, path, _, tree in _parsed() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr"]
    assert found == []


@pytest.mark.parametrize("layer_map_module, expected", [("recsys_core.runs.index", 5), ("recsys_core.data.io", 1),
                                                         ("recsys_core", 7), ("recsys_core.models.sasrec", 2)])
def test_layer_map(layer_map_module: str, expected: int) -> None:
    assert layer_of(layer_map_module) == expected


def test_the_checks_can_fail(tmp_path) -> None:
    """The checkers find a planted upward import, a lazy import without reason, and a long function."""
    planted = ("import os\n\ndef f():\n    from recsys_core.runs.index import RunIndex\n"
               + "".join(f"    x{k} = {k}\n" for k in range(70)))
    tree = ast.parse(planted)
    found = list(_imports(tree, "recsys_core.data.fake", False))
    assert ("recsys_core.runs.index", 4, True) in found
    assert layer_of("recsys_core.runs.index") > layer_of("recsys_core.data.fake")
    assert any(isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES
               for n in ast.walk(tree))
