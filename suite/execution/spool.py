"""The spool: results that could not be written to MLflow, kept on local disk until they are.

When the tracking store goes away mid-battery (a server stopped, a disk full), the driver stops
writing to it, keeps every further result here — one pickle per cell under ``.gsibench-spool/``
in the working directory — lets the battery finish, and says so. The next ``gsibench run`` in that
directory writes the spooled results first (clean twins before perturbed runs, comparisons
recomputed where a twin was missing), then skips those cells as finished. A spooled result whose
cell is already ``FINISHED`` in the store (the write had in fact gone through) is dropped, so
nothing is written twice; a file is deleted only after its run is written.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gsibench.core.errors import UsageError
from gsibench.measure.result import CellResult

SPOOL_DIR = ".gsibench-spool"
FORMAT = 1


@dataclass
class SpooledResult:
    """One result waiting to be written, with where it was meant to go."""

    experiment: str
    uri: str
    result: CellResult
    comparison: dict[str, float] | None
    path: Path | None = None


class Spool:
    """Results for MLflow experiments, one folder per experiment name."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else Path.cwd() / SPOOL_DIR

    def _folder(self, experiment: str) -> Path:
        return self.root / hashlib.sha256(experiment.encode()).hexdigest()[:16]

    def save(self, experiment: str, uri: str, result: CellResult, comparison: dict[str, float] | None) -> Path:
        """Write atomically (a temporary file renamed), so a kill never leaves half a result."""
        folder = self._folder(experiment)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{result.cell.key}.pkl"
        entry = {"format": FORMAT, "experiment": experiment, "uri": uri, "result": result,
                 "comparison": comparison}
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            pickle.dump(entry, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        return path

    def pending(self, experiment: str) -> list[SpooledResult]:
        """Every readable spooled result of ``experiment``; clean twins first."""
        folder = self._folder(experiment)
        if not folder.is_dir():
            return []
        entries = []
        for path in sorted(folder.glob("*.pkl")):
            try:
                with path.open("rb") as file:
                    entry = pickle.load(file)
            except Exception as error:
                raise UsageError(f"the spooled result {path} cannot be read ({error!r}); delete it to go on, "
                                 "and its cell will be run again") from None
            if isinstance(entry, dict) and entry.get("format") == FORMAT and entry["experiment"] == experiment:
                entries.append(SpooledResult(entry["experiment"], entry["uri"], entry["result"],
                                             entry["comparison"], path))
        entries.sort(key=lambda e: not e.result.cell.is_clean)
        return entries

    def remove(self, entry: SpooledResult) -> None:
        if entry.path is not None:
            entry.path.unlink(missing_ok=True)
            try:
                entry.path.parent.rmdir()
                self.root.rmdir()
            except OSError:  # not empty yet
                pass
