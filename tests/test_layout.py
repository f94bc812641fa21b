"""The layer rules of the package, read from the imports of every module (function-local and type-only ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnngen"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module name `path` imports, wherever the statement is: inside functions and under `TYPE_CHECKING` too."""
    names = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from rnngen.x import module`
    return names


MODULES = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def internal(names: set[str]) -> set[str]:
    return {name for name in names if name in MODULES}


def layer(module: str) -> str:
    """A subpackage's name for its modules (`training`), else the module's own name (`rnngen.config`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else module


# From the bottom up: a module may import its own layer and the layers below it, never one above.
LAYERS = [
    {"rnngen", "rnngen.errors", "rnngen.config", "rnngen.interrupts"},
    {"store"},  # run folders, checkpoint files, names, locks, hub models
    {"data"},  # text -> tokens
    {"models"},
    {"training"},
    {"generation"},
    {"analysis"},
    {"lab"},  # synthetic experiments: models, training, analysis; never api or cli
    {"export"},  # rnngen export: a checkpoint's model as ONNX and a web page, checked against the NumPy model
    {"rnngen.api", "rnngen.pipeline", "rnngen.evaluation"},  # rnngen.load; rnngen.train, rnngen.prepare; evaluate
    {"server"},  # rnngen serve's HTTP application over the generation layer's scheduler
    {"cli", "rnngen.__main__"},
]


def rank(module: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if layer(module) in names)


def test_every_module_was_read():
    assert {"rnngen.training.trainer", "rnngen.cli.main", "rnngen.data.streams", "rnngen.models.state"} <= set(MODULES)
    # Function-local imports count: the group imports click at the top, display inside a method.
    assert {"click", "rnngen.cli.display"} <= MODULES["rnngen.cli.main"]


def test_every_module_has_a_layer():
    assert [module for module in MODULES if not any(layer(module) in names for names in LAYERS)] == []


def test_layers_import_downward_only():
    upward = {
        module: sorted(name for name in internal(names) if rank(name) > rank(module))
        for module, names in MODULES.items()
    }
    assert {module: names for module, names in upward.items() if names} == {}


def test_the_lazy_package_entry_points_are_real():
    import rnngen

    # Each entry resolves to the function or class its module defines under that name.
    assert set(rnngen.API) == {"load", "Model", "train", "prepare", "evaluate"}
    for name, module in rnngen.API.items():
        entry = getattr(rnngen, name)
        assert callable(entry) and entry.__module__ == module and entry.__name__ == name


def test_no_import_cycles():
    graph = {module: internal(names) - {module} for module, names in MODULES.items()}
    # A package imports its own modules in __init__; a cycle through a package's __init__ is still a cycle.
    visiting, done, cycles = set(), set(), []

    def visit(module: str, trail: list[str]) -> None:
        if module in done:
            return
        if module in visiting:
            cycles.append(trail[trail.index(module) :] + [module])
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
    offenders = {
        module: sorted(n for n in names if n.split(".")[0] == "torch")
        for module, names in MODULES.items()
        if layer(module) == "data"
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_models_import_nothing_of_training_generation_or_cli():
    above = {"training", "generation", "cli"}
    offenders = {
        module: sorted(n for n in internal(names) if layer(n) in above)
        for module, names in MODULES.items()
        if layer(module) == "models"
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_only_the_cli_imports_click_or_rich():
    offenders = {
        module: sorted(n for n in names if n.split(".")[0] in ("click", "rich"))
        for module, names in MODULES.items()
        if layer(module) != "cli"
    }
    assert {module: names for module, names in offenders.items() if names} == {}
