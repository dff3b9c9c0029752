"""Training tasks behind one interface: see :mod:`gsibench.tasks.base` and :mod:`gsibench.tasks.registry`."""

from gsibench.tasks.base import Problem, Score, Task
from gsibench.tasks.registry import available, get, register, resolve

__all__ = ["Problem", "Score", "Task", "available", "get", "register", "resolve"]
