"""The built-in optimizers: each name and the family module that registers it (one file per family).

A family module is imported the first time one of its names is asked for, so naming an optimizer — or
misspelling one — costs no torch import. ``tests/core/test_registry.py`` checks that every module
registers exactly the names listed here.
"""

BUILTINS = {
    "adam": "gsibench.optimizers.adam",
    "adam-balanced": "gsibench.optimizers.adam",
    "adamw": "gsibench.optimizers.adam",
    "lion": "gsibench.optimizers.lion",
    "muon": "gsibench.optimizers.muon",
    "scion": "gsibench.optimizers.scion",
    "sgd": "gsibench.optimizers.sgd",
    "signsgd": "gsibench.optimizers.sgd",
}
