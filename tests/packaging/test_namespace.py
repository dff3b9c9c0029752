"""One import namespace: gsibench installs as ``gsibench`` only and never collides with a user's modules.

The folders keep their names (suite/, optimizers/, tasks/) and install as ``gsibench``,
``gsibench.optimizers`` and ``gsibench.tasks`` (setuptools ``package-dir``). These tests build the
wheel and look inside it, install it into a fresh virtual environment, and run gsibench from a folder
that holds a user's own ``optimizers.py``, ``tasks/`` and ``suite/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"suite": "gsibench", "optimizers": "gsibench.optimizers", "tasks": "gsibench.tasks"}


def run(command: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "GSIBENCH_PROGRESS": "off", **env}
    if "PYTHONPATH" not in env:
        environment.pop("PYTHONPATH", None)
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def gsibench_script() -> str:
    return str(Path(sys.executable).with_name("gsibench"))


def test_pyproject_lists_every_package_folder():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join([package, *init.parent.relative_to(ROOT / folder).parts]))
    assert found == listed, f"missing in pyproject: {sorted(found - listed)}; stale: {sorted(listed - found)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", *FOLDERS):  # a copy: building writes build/ into the tree
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    done = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                str(source)], cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("gsibench-*.whl")
    return path


def test_the_wheel_holds_gsibench_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = archive.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode().split()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    tops = {name.split("/")[0] for name in names}
    assert top_level == ["gsibench"]
    assert {t for t in tops if not t.endswith(".dist-info")} == {"gsibench"}
    for expected in ("gsibench/optimizers/adam.py", "gsibench/tasks/digits_mlp.py", "gsibench/cli/parser.py",
                     "gsibench/battery/default.toml", "gsibench/execution/runner.py"):
        assert expected in names
    assert "gsibench = gsibench.cli:main" in entry_points and "gsibench = gsibench.pytest_plugin" in entry_points


def test_the_wheel_installs_into_a_fresh_environment_and_runs(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).stdout.strip())
    # the dependencies (torch, MLflow, ...) come from this environment's site folders (a .pth line adds a
    # folder but runs none of its own .pth files, so this environment's editable gsibench stays out);
    # gsibench itself comes only from the wheel
    sites = [p for p in dict.fromkeys([sysconfig.get_paths()["purelib"], *sys.path]) if p.endswith("-packages")]
    (site / "dependencies.pth").write_text("\n".join(sites) + "\n")
    done = run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = run([str(env_dir / "bin" / "gsibench"), "list", "optimizers"], cwd=tmp_path, COLUMNS="200")
    assert listed.returncode == 0, listed.stderr[-3000:]
    for name in ("adam-balanced", "muon", "scion", "signsgd"):
        assert name in listed.stdout
    where = run([str(python), "-c", "import gsibench.optimizers.adam as m; print(m.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr


USER_PLUGIN = '''
import torch
from gsibench import register_optimizer


@register_optimizer("local-sgd", defaults={"lr": 0.05})
def local_sgd(params, lr):
    """Plain SGD from a module in the working directory."""
    return torch.optim.SGD([p.tensor for p in params], lr=lr)
'''


@pytest.fixture
def crowded_folder(tmp_path) -> Path:
    """A user's project with modules named like gsibench's folders; each leaves a mark when imported."""
    (tmp_path / "optimizers.py").write_text("open('imported-optimizers', 'w').close()\nregistry = None\n")
    for package in ("tasks", "suite"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"open('imported-{package}', 'w').close()\n")
    (tmp_path / "tasks" / "base.py").write_text("raise ImportError('the user tasks package was used')\n")
    (tmp_path / "localmod.py").write_text(USER_PLUGIN)
    return tmp_path


def marks(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("imported-*"))


def test_a_users_optimizers_tasks_and_suite_do_not_collide(crowded_folder):
    folder, here = crowded_folder, {"PYTHONPATH": "."}  # the worst case: the user's folder first on the path
    probe = run([sys.executable, "-c", "import gsibench.cli, gsibench.optimizers.registry as r, gsibench.tasks.base "
                 "as b; print(r.__file__); print(b.__file__)"], cwd=folder, **here)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert all(Path(line).is_relative_to(ROOT) for line in probe.stdout.split()), probe.stdout
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    for env in ({}, here):  # --import finds a module in the working directory with and without PYTHONPATH
        done = run([gsibench_script(), "run", "--import", "localmod", "--optimizers", "local-sgd,adam",
                    "--tasks", "quadratic", "--perturbations", "step:at=0.5,factor=10", "--seeds", "1",
                    "--steps", "20", "--no-tune", "--jobs", "2", "--tracking-uri", uri], cwd=folder, **env)
        assert done.returncode == 0, done.stderr[-3000:]
    assert marks(folder) == []


def test_the_pytest_fixture_works_beside_a_users_modules(crowded_folder):
    folder = crowded_folder
    done = run([gsibench_script(), "baseline", "--optimizer", "sgd", "--tasks", "quadratic", "--perturbations",
                "step:at=0.5,factor=10", "--seeds", "2", "--steps", "20", "--out", "sgd-baseline.json"], cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder / "test_user.py").write_text(
        "def test_sgd_unchanged(gsibench_check):\n"
        "    assert gsibench_check('sgd', baseline='sgd-baseline.json').passed\n\n"
        "def test_local_plugin_moved(gsibench_check):\n"
        "    import pytest\n"
        "    with pytest.raises(pytest.fail.Exception, match='MOVED'):\n"
        "        gsibench_check('local-sgd[lr=0.2]', baseline='sgd-baseline.json', imports=['localmod'])\n")
    tested = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"], cwd=folder,
                 PYTHONPATH=".")
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "2 passed" in tested.stdout
    assert marks(folder) == []
