"""Calling plugin code that may not come back: in a child process, with a time limit.

Before training, the driver builds each plugin optimizer once on probe parameters (so that a bad value
fails before any cell runs). A plugin constructor can hang, call ``os._exit`` or segfault; run in the
driver it would take the driver with it. :func:`call_isolated` runs such a call in a forked child: the
child inherits everything the caller has registered (decorated plugins included), sends back the
result or the exception, and leaves with ``os._exit``. A child that does not answer within ``timeout``
seconds is killed; one that ends without answering is reported with its exit code or signal.

Fork after torch is safe for this: the probe tensors are far below the size at which torch starts
OpenMP threads, and the child only builds an optimizer. Where there is no fork (not POSIX) the call runs
in this process.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from gsibench.core.errors import UsageError


def _child(conn, func: Callable[..., Any], args: tuple) -> None:
    faulthandler.disable()  # a crash is reported by the caller in one line, not as a dump of this copy's stack
    try:
        try:
            conn.send(("ok", func(*args)))
        except BaseException as error:  # everything goes back to the caller
            try:
                conn.send(("error", error))
            except Exception:  # an exception that does not pickle
                conn.send(("error", UsageError(f"{type(error).__name__}: {error}")))
    finally:
        os._exit(0)  # no atexit handlers, no flushing of the parent's inherited buffers


def call_isolated(func: Callable[..., Any], args: tuple, timeout: float | None, what: str) -> Any:
    """``func(*args)`` in a forked child; its return value, or its exception raised here. ``what`` names the
    call in errors ("building optimizer 'x' on probe parameters"). ``timeout=None``: no limit."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return func(*args)
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(theirs, func, args), daemon=True, name="gsibench-probe")
    process.start()
    theirs.close()
    try:
        if not ours.poll(timeout):
            raise UsageError(f"{what} did not finish within {timeout:g} s (a hang?); the limit is the cell "
                             "timeout (--cell-timeout, or cell_timeout in a battery file)")
        try:
            status, value = ours.recv()
        except EOFError:
            process.join(timeout=5)
            code = process.exitcode
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            raise UsageError(f"{what}: the process {how}") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        ours.close()
    if status == "error":
        raise value
    return value
