"""The pytest plugin of gsibench: a ``gsibench_check`` fixture for optimizer regression tests.

Installed with the package (entry point ``pytest11: gsibench``), so in any project that has gsibench::

    def test_my_optimizer(gsibench_check):
        gsibench_check("mypkg.opt:MyAdam", baseline="tests/adam-baseline.json")

reruns the baseline's quick battery for the optimizer (:func:`gsibench.regression.check.run_check`) and fails the
test with the diff table when a metric or trajectory moved beyond tolerance. Record the baseline once
with ``gsibench baseline --optimizer adam --out tests/adam-baseline.json``.

pytest loads this module in every session of the environment, so it imports nothing heavy at import
time: torch, MLflow and the engine load only when the fixture is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

Tolerance = float | str | Sequence[str] | Mapping[str, float] | None


def _tolerance_args(tolerance: Tolerance) -> list[str]:
    """``1.5`` / ``"1.5"`` / ``["1.5", "val_score=0.01"]`` / ``{"val_score": 0.01}`` -> CLI-style items."""
    if tolerance is None:
        return []
    if isinstance(tolerance, (int, float, str)):
        return [str(tolerance)]
    if isinstance(tolerance, Mapping):
        return [f"{name}={value}" for name, value in tolerance.items()]
    return [str(item) for item in tolerance]


@pytest.fixture
def gsibench_check(request: pytest.FixtureRequest) -> Callable[..., object]:
    """``gsibench_check(optimizer, baseline, tolerance=None, only_worse=False, imports=())`` -> the report.

    ``baseline`` is a path (relative paths are tried from the working directory, then from pytest's
    root directory) or a loaded baseline document; ``tolerance`` as ``gsibench check --tolerance``.
    """

    def check(optimizer: str, baseline: str | Path | dict, tolerance: Tolerance = None,
              only_worse: bool = False, imports: Sequence[str] = ()):
        from gsibench.core.errors import UsageError
        from gsibench.regression.check import run_check

        if isinstance(baseline, (str, Path)):
            path = Path(baseline)
            if not path.is_absolute() and not path.exists():
                path = Path(request.config.rootpath) / path
            baseline = path
        try:
            report = run_check(optimizer, baseline, _tolerance_args(tolerance), only_worse, list(imports))
        except UsageError as error:
            pytest.fail(f"gsibench check could not run: {error}", pytrace=False)
        if not report.passed:
            pytest.fail(report.text(), pytrace=False)
        return report

    return check
