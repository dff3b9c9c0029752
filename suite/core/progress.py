"""Progress of long work, as domain code reports it: stages of counted steps, and notes.

Domain code (the driver, the lr sweep, the reproductions, the regression check) takes a
:class:`Progress` and calls it; it never draws anything itself and knows nothing of terminals. The
default reports nowhere. The command line passes one that draws a bar on a terminal and prints a plain
line every few seconds elsewhere (``gsibench.cli.progress``).
"""

from __future__ import annotations


class Progress:
    """Silent progress: the interface, and what library callers get by default."""

    def begin(self, label: str, total: int | None = None) -> None:
        """A stage of ``total`` steps (unknown: ``None``) starts; it ends at :meth:`end` or the next ``begin``."""

    def total(self, total: int) -> None:
        """The stage's step count, once known."""

    def advance(self, detail: str = "") -> None:
        """One step of the current stage is done; ``detail`` says which."""

    def note(self, text: str) -> None:
        """A line worth a person's attention (resuming, skipping, a warning)."""

    def end(self) -> None:
        """The current stage is over."""


SILENT = Progress()
