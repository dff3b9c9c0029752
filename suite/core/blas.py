"""numpy's BLAS on one thread in the processes that run and compare cells.

numpy ships its own OpenBLAS, which starts a thread per core and lets those threads spin for a while after
every call. In a battery on two cores that spinning took 30–40 ms of CPU per cell from the workers (the
driver's twin comparisons call ``numpy.dot``; measured with ``benchmarks/overhead.py``'s scaling rows),
and a threaded BLAS splits its sums by thread count, so a metric would differ in the last bits between
machines with different core counts. Cells parallelise by running side by side (``--jobs``), never
inside one process, so every gsibench process that runs or compares cells keeps numpy's BLAS on one
thread, as torch's intra-op threads are (:data:`gsibench.execution.runner.CELL_THREADS`).
"""

from __future__ import annotations

_limited = False


def one_blas_thread() -> None:
    """Limit every BLAS library loaded in this process to one thread, once (later calls return at once)."""
    global _limited
    if _limited:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    _limited = True
