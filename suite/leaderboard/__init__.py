"""The leaderboard: MLflow runs -> tables with 95% CIs and significance ranks, plots, a self-contained page.

Reads MLflow only (:mod:`~suite.leaderboard.data`), never the runner. :mod:`~suite.leaderboard.stats`
holds the statistics, :mod:`~suite.leaderboard.tables` the rows, :mod:`~suite.leaderboard.plots` the
figures, :mod:`~suite.leaderboard.markdown` and :mod:`~suite.leaderboard.html` the two renderings and
:mod:`~suite.leaderboard.command` the ``gsibench leaderboard`` sub-command.
"""
