"""Importing this module registers every built-in task (one file per family)."""

from gsibench.tasks import char_gpt, cifar, digits_cnn, digits_mlp, finite_sum, oracle, quadratic, reddi, wikitext_gpt  # noqa: F401
