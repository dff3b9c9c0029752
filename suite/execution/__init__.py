"""Running cells: the runner (one cell in this process), the executors (in-process, a process pool, Ray),
the driver that logs results, the spool for a failing store, and the learning-rate sweep."""
