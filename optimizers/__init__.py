"""Optimizers behind one interface: see :mod:`optimizers.registry`."""

from optimizers.params import ROLES, ParamInfo, Role, infer_roles
from optimizers.registry import OptimizerEntry, available, get, register, resolve

__all__ = ["ROLES", "OptimizerEntry", "ParamInfo", "Role", "available", "get", "infer_roles", "register", "resolve"]
