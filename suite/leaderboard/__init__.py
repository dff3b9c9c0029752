"""The leaderboard: MLflow runs -> tables with 95% CIs and significance ranks, plots, a self-contained page.

Reads MLflow only (:mod:`~gsibench.leaderboard.data`), never the runner. :mod:`~gsibench.leaderboard.stats`
holds the statistics, :mod:`~gsibench.leaderboard.tables` the rows, :mod:`~gsibench.leaderboard.plots` the
figures, :mod:`~gsibench.leaderboard.markdown` and :mod:`~gsibench.leaderboard.html` the two renderings and
:mod:`~gsibench.leaderboard.build` writes them all (``gsibench leaderboard`` calls it).
"""

DEFAULT_EXPERIMENT = "default"
"""The experiment of the default battery (``suite/battery/default.toml``)."""
