"""Training tasks behind one interface: see :mod:`tasks.base` and :mod:`tasks.registry`."""

from tasks.base import Problem, Score, Task
from tasks.registry import available, get, register, resolve

__all__ = ["Problem", "Score", "Task", "available", "get", "register", "resolve"]
