"""gsibench engine: specs, battery, probes & metrics, runner, executors, tracking, leaderboard, CLI.

Kept import-light on purpose: worker processes and plugins import pieces of it directly.
"""

__version__ = "0.1.0"
