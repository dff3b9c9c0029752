"""The one progress reporter of the command line (:class:`gsibench.core.progress.Progress`).

On a terminal it draws a rich progress bar on stderr. Elsewhere (CI logs, ``nohup``, a pipe) it prints a
plain line when a stage starts, at most every :data:`PLAIN_EVERY` seconds while it runs, and when it
ends, so that a long battery is never silent. ``GSIBENCH_PROGRESS=bar|plain|off`` overrides the choice
(``off`` keeps only the notes).
"""

from __future__ import annotations

import os
import sys
import time

from gsibench.core.progress import Progress

PLAIN_EVERY = 10.0
"""Seconds between plain progress lines (``GSIBENCH_PROGRESS_SECONDS`` overrides)."""


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ConsoleProgress(Progress):
    """Progress to stderr: a bar on a terminal, plain lines elsewhere."""

    def __init__(self, mode: str | None = None):
        mode = mode or os.environ.get("GSIBENCH_PROGRESS", "")
        if mode not in ("bar", "plain", "off"):
            mode = "bar" if sys.stderr.isatty() else "plain"
        self.mode = mode
        self.every = float(os.environ.get("GSIBENCH_PROGRESS_SECONDS", PLAIN_EVERY))
        self._bar = None
        self._task = None
        self._label, self._total, self._done = "", None, 0
        self._started = self._printed = 0.0
        if mode == "bar":
            from rich.console import Console

            self.console = Console(stderr=True)

    # ---- Progress ---------------------------------------------------------------------------------
    def begin(self, label: str, total: int | None = None) -> None:
        self.end()
        self._label, self._total, self._done = label, total, 0
        self._started = self._printed = time.monotonic()
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
                            console=self.console)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, last="")
        elif self.mode == "plain":
            self._line(f"{label}: {total if total is not None else '?'} to do")

    def total(self, total: int) -> None:
        self._total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def advance(self, detail: str = "") -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, last=detail)
        elif self.mode == "plain" and time.monotonic() - self._printed >= self.every:
            self._line(self._status(detail))

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self._line(text)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
        elif self.mode == "plain" and self._label:
            self._line(f"{self._label}: {self._done} done in {_duration(time.monotonic() - self._started)}")
        self._label = ""

    # ---- plain lines ------------------------------------------------------------------------------
    def _status(self, detail: str) -> str:
        elapsed = time.monotonic() - self._started
        text = f"{self._label}: {self._done}"
        if self._total:
            text += f"/{self._total} ({100 * self._done / self._total:.0f}%)"
            if self._done:
                text += f", ~{_duration(elapsed / self._done * (self._total - self._done))} left"
        text += f", {_duration(elapsed)} elapsed"
        return text + (f" — last: {detail}" if detail else "")

    def _line(self, text: str) -> None:
        self._printed = time.monotonic()
        print(text, file=sys.stderr, flush=True)
