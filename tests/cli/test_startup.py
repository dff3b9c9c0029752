"""Start-up: ``import gsibench`` and building the command line load neither torch, MLflow nor pandas
(the plugin API is re-exported lazily), so ``gsibench --help`` answers at once."""

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


def test_the_plugin_api_loads_on_first_use():
    assert "torch" in loaded_after("from gsibench import ParamInfo, Task, register_optimizer")
    assert loaded_after("from gsibench import UsageError") == []
