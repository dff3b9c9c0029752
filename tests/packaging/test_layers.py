"""The layers of the package, checked on the source: an import that goes up a layer fails here.

Bottom to top (a module may import its own package and any lower layer, nothing beside or above it)::

    core                      errors, spec grammar, roles, the registry, progress
    optimizers | tasks        the built-ins and the plugin interfaces (they import only core)
    battery                   perturbations, schedules, cells, battery specs
    measure                   probes, metrics, twins, results, the metric schema
    tracking                  the MLflow store, the server, runs read back
    execution                 runner, executors, driver, spool, lr tuning
    reproductions | regression
    leaderboard | pytest_plugin
    cli                       a leaf: only ``python -m gsibench`` (``__main__``) imports it

Imports inside functions count: a lazy import is still a dependency. The folder names (suite/,
optimizers/, tasks/) are never import names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"suite": "gsibench", "optimizers": "gsibench.optimizers", "tasks": "gsibench.tasks"}
LAYERS = [("core",), ("optimizers", "tasks"), ("battery",), ("measure",), ("tracking",), ("execution",),
          ("reproductions", "regression"), ("leaderboard", "pytest_plugin"), ("cli",), ("__main__",)]
COMMAND_LINE = ("cli", "__main__")
"""The CLI and the one entry point that may import it (``python -m gsibench``; the console script names
``gsibench.cli:main`` directly)."""
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for every source file of the package under ``root``."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def layer(module: str) -> str | None:
    """``gsibench.execution.runner`` -> ``execution``; the root package itself has no layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "gsibench" else None


def violations(root: Path = ROOT) -> list[str]:
    """Every import against the layers, into the CLI, or by a folder name, under ``root``."""
    wrong: dict[str, str] = {}  # one finding per import statement
    for module, path in modules(root).items():
        mine = layer(module)
        for line, target in imports(path):
            where = f"{path.relative_to(root)}:{line}"
            theirs = layer(target)
            if target.split(".")[0] in FOLDERS:
                wrong.setdefault(where, f"{where} imports the folder name {target} (import gsibench.* instead)")
            elif theirs == "cli" and mine not in COMMAND_LINE:
                wrong.setdefault(where, f"{where} imports {target}: the CLI is a leaf")
            elif mine in RANK and theirs in RANK and theirs != mine and RANK[theirs] >= RANK[mine]:
                wrong.setdefault(where, f"{where} ({mine}) imports {target} ({theirs}), which is not below it")
    return list(wrong.values())


def test_every_source_module_has_a_layer():
    unplaced = [m for m in modules() if layer(m) is not None and layer(m) not in RANK]
    assert not unplaced, f"modules outside every layer (add their package to LAYERS): {unplaced}"


def test_no_import_goes_up_or_sideways_or_into_the_cli():
    wrong = violations()
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize("folder", ["tests", "benchmarks"])
def test_tests_and_benchmarks_use_the_package_name(folder):
    bare = [f"{path.relative_to(ROOT)}:{line} imports {target}" for path in sorted((ROOT / folder).rglob("*.py"))
            for line, target in imports(path) if target.split(".")[0] in FOLDERS]
    assert not bare, "import gsibench.* instead:\n" + "\n".join(bare)


def test_the_check_catches_each_kind_of_violation(tmp_path):
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "tasks" / "bad.py").write_text("from gsibench.execution.runner import run_cell\n"
                                               "from gsibench.optimizers import adam\n")
    (tmp_path / "suite" / "measure").mkdir()
    (tmp_path / "suite" / "measure" / "bad.py").write_text("def f():\n    import gsibench.cli.parser\n"
                                                          "    import suite.core\n")
    (tmp_path / "suite" / "execution").mkdir()
    (tmp_path / "suite" / "execution" / "fine.py").write_text("from gsibench.measure import probes\n")
    found = violations(tmp_path)
    assert len(found) == 4, found
    assert any("tasks/bad.py:1" in v and "execution" in v for v in found)
    assert any("tasks/bad.py:2" in v and "optimizers" in v for v in found)  # sideways
    assert any("measure/bad.py:2" in v and "leaf" in v for v in found)  # inside a function
    assert any("measure/bad.py:3" in v and "folder name" in v for v in found)
