"""Optimizers behind one interface: see :mod:`gsibench.optimizers.registry`."""

from gsibench.core.params import ROLES, ParamInfo, Role, infer_roles
from gsibench.optimizers.registry import OptimizerEntry, available, get, register, resolve

__all__ = ["ROLES", "OptimizerEntry", "ParamInfo", "Role", "available", "get", "infer_roles", "register", "resolve"]
