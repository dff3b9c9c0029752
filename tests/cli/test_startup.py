"""Start-up: ``import gsibench``, the plugin API and building the command line load neither torch, MLflow
nor pandas (names are re-exported lazily; built-in families load when first named), so ``gsibench --help``
and a misspelt name answer at once."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "mlflow", "pandas", "scipy", "sklearn", "matplotlib")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1])


def test_import_gsibench_and_building_the_parser_load_nothing_heavy():
    assert loaded_after("import gsibench\nfrom gsibench.cli.parser import build_parser\nbuild_parser()") == []


def test_help_of_every_command_loads_nothing_heavy():
    code = ("from gsibench.cli.parser import COMMANDS, build_parser\n"
            "import contextlib, io\n"
            "parser = build_parser()\n"
            "for name in ['list', 'run', 'grid', 'invariance', 'phase', 'leaderboard', 'baseline', 'check',\n"
            "             'server']:\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        parser.parse_args([name, '--help'])")
    assert loaded_after(code) == []


def test_the_plugin_api_imports_without_torch_and_a_family_loads_it():
    api = "from gsibench import ParamInfo, Problem, Score, Task, UsageError, register_optimizer, register_task"
    assert loaded_after(api) == []
    assert "torch" in loaded_after("from gsibench.optimizers import registry\nregistry.get('adam')")
