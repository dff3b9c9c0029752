"""The built-in tasks: each name and the family module that registers it (one file per family).

A family module is imported the first time one of its names is asked for, so naming a task — or
misspelling one — costs no torch import. ``tests/core/test_registry.py`` checks that every module
registers exactly the names listed here.
"""

BUILTINS = {
    "char-gpt": "gsibench.tasks.char_gpt",
    "cifar-resnet18": "gsibench.tasks.cifar",
    "digits-cnn": "gsibench.tasks.digits_cnn",
    "digits-mlp": "gsibench.tasks.digits_mlp",
    "finite-sum": "gsibench.tasks.finite_sum",
    "oracle": "gsibench.tasks.oracle",
    "quadratic": "gsibench.tasks.quadratic",
    "reddi": "gsibench.tasks.reddi",
    "wikitext-gpt": "gsibench.tasks.wikitext_gpt",
}
