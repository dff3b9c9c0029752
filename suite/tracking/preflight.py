"""Before any command touches MLflow: is the store there, and does it answer?

MLflow's own client retries a refused connection with back-off for about four minutes before it gives
up, and a SQLite URI makes MLflow create the file on first contact. So every command checks first, in
seconds, and says what is wrong in one line:

* :func:`check_reachable` (writing commands): a tracking *server* must answer ``/health``;
* :func:`check_readable` (reading commands): the same, and a SQLite store must already exist — a
  command that only reads never creates one;
* :func:`check_database` (``gsibench server``): a database server behind a ``postgresql://`` store
  must accept a connection.

The wait for an answer is :data:`TIMEOUT` seconds, ``$GSIBENCH_STORE_TIMEOUT`` overrides it. Standard
library only: the check runs before MLflow is imported.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from gsibench.core.errors import UsageError

TIMEOUT = 10.0
"""Seconds to wait for a tracking server's ``/health`` (``$GSIBENCH_STORE_TIMEOUT`` overrides)."""


def default_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def timeout() -> float:
    text = os.environ.get("GSIBENCH_STORE_TIMEOUT", "")
    try:
        value = float(text) if text.strip() else TIMEOUT
    except ValueError:
        raise UsageError(f"$GSIBENCH_STORE_TIMEOUT must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise UsageError(f"$GSIBENCH_STORE_TIMEOUT must be positive, got {text!r}")
    return value


def check_reachable(uri: str, seconds: float | None = None) -> None:
    """Fail at once, with a clear message, when a tracking *server* does not answer.

    Any HTTP answer (even 401 or 404 from a proxy) counts as reachable: only a connection that cannot
    be made, or no answer within the timeout, is an error."""
    if not uri.startswith(("http://", "https://")):
        return
    wait = timeout() if seconds is None else seconds
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=wait).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            reason = f"no answer within {wait:g} s; $GSIBENCH_STORE_TIMEOUT sets the wait"
        raise UsageError(f"MLflow tracking server '{uri}' is unreachable ({reason}); start one with "
                         "`gsibench server`, or check --tracking-uri / $MLFLOW_TRACKING_URI") from None


def check_readable(uri: str, given: bool = True) -> None:
    """A store to read from: a server that answers, or a SQLite file that exists (never created here).
    ``given``: whether the user named the URI (else the message says it is the default)."""
    check_reachable(uri)
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            how = "" if given else " (the default: no --tracking-uri and no $MLFLOW_TRACKING_URI)"
            raise UsageError(f"nothing to read: no MLflow store at {path}{how}; run a battery first "
                             "(`gsibench run`), or point --tracking-uri at the store to read")


def check_database(uri: str, seconds: float | None = None) -> None:
    """A ``postgresql://`` store's host must accept a TCP connection within the timeout (a database that
    does not answer would otherwise hang the server's start-up for minutes)."""
    if not uri.split("://")[0].startswith("postgresql"):
        return
    parts = urllib.parse.urlsplit(uri)
    host, port = parts.hostname or "localhost", parts.port or 5432
    wait = timeout() if seconds is None else seconds
    try:
        socket.create_connection((host, port), timeout=wait).close()
    except OSError as error:
        reason = f"no answer within {wait:g} s" if isinstance(error, TimeoutError) else error.strerror or error
        raise UsageError(f"the database of backend store '{parts.scheme}://…@{host}:{port}' is unreachable "
                         f"({reason})") from None
