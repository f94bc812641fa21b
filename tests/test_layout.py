"""The layer rules of the package, read from the imports of every module (function-local ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnngen"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def typing_only(tree: ast.Module) -> set[ast.AST]:
    """The statements under `if TYPE_CHECKING:`: they never run, so they import nothing."""
    return {node for block in ast.walk(tree) if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for statement in block.body for node in ast.walk(statement)}


def imports_of(path: Path) -> set[str]:
    """Every module name `path` imports when it runs, wherever the import statement is."""
    names = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    tree = ast.parse(path.read_text())
    skipped = typing_only(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from rnngen.x import module`
    return names


MODULES = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def internal(names: set[str]) -> set[str]:
    return {name for name in names if name in MODULES}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else module


def test_every_module_was_read():
    assert {"rnngen.training.trainer", "rnngen.cli.main", "rnngen.data.streams", "rnngen.models.state"} <= set(MODULES)
    # Function-local imports count: the group imports click at the top, display inside a method.
    assert {"click", "rnngen.cli.display"} <= MODULES["rnngen.cli.main"]


def test_no_import_cycles():
    graph = {module: internal(names) - {module} for module, names in MODULES.items()}
    # A package imports its own modules in __init__; a cycle through a package's __init__ is still a cycle.
    visiting, done, cycles = set(), set(), []

    def visit(module: str, trail: list[str]) -> None:
        if module in done:
            return
        if module in visiting:
            cycles.append(trail[trail.index(module):] + [module])
            return
        visiting.add(module)
        for target in sorted(graph[module]):
            visit(target, trail + [module])
        visiting.discard(module)
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []


def test_data_imports_no_torch():
    offenders = {module: sorted(n for n in names if n.split(".")[0] == "torch")
                 for module, names in MODULES.items() if layer(module) == "data"}
    assert {module: names for module, names in offenders.items() if names} == {}


def test_models_import_nothing_of_training_generation_or_cli():
    above = {"training", "generation", "cli"}
    offenders = {module: sorted(n for n in internal(names) if layer(n) in above)
                 for module, names in MODULES.items() if layer(module) == "models"}
    assert {module: names for module, names in offenders.items() if names} == {}


def test_only_the_cli_imports_click_or_rich():
    offenders = {module: sorted(n for n in names if n.split(".")[0] in ("click", "rich"))
                 for module, names in MODULES.items() if layer(module) != "cli"}
    assert {module: names for module, names in offenders.items() if names} == {}
