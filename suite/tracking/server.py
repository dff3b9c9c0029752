"""A real MLflow tracking server (``gsibench server``) for batteries, on loopback by default.

A SQLite file serves one machine: the driver is its only writer (workers return results; Ray tasks
too). A server is what several drivers, a Ray head node, or a team share: run this once, then
``gsibench run --tracking-uri http://127.0.0.1:5000``. With PostgreSQL (``--backend-store-uri
postgresql://user:pass@host/db``, drivers from ``pip install 'mlflow[db]'``) it takes many writers.

The command wraps ``mlflow server`` with the flags that matter here (platform.md, "Server"):
``--backend-store-uri``, ``--artifacts-destination`` (artifacts proxied through the server, so
clients need no access to its disk), ``--host``, ``--port``, ``--workers``. Before starting it
creates the database and runs MLflow's migrations in this one process (several uvicorn workers
migrating a new SQLite file at once race), waits for ``/health``, and prints the URI to use.
MLflow's security middleware (``--allowed-hosts``) stays on; binding beyond loopback is a choice
to make with ``mlflow server`` directly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from gsibench.core.errors import UsageError
from gsibench.tracking.preflight import check_database

HEALTH_TIMEOUT = 120.0
"""Seconds to wait for ``/health`` (about 11 s with two workers here)."""


def check_backend(uri: str) -> None:
    """Only SQL stores: the file store is deprecated (platform.md) and the rest is not ours to test."""
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise UsageError(f"the folder of the SQLite store '{uri}' does not exist: {folder}")
        return
    if uri.split("://")[0] in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        try:
            __import__("psycopg2" if "psycopg2" in uri or "+" not in uri.split("://")[0] else "psycopg")
        except ImportError:
            raise UsageError("a PostgreSQL store needs its driver: pip install 'mlflow[db]'") from None
        check_database(uri)
        return
    raise UsageError(f"backend store '{uri}' must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB")


def check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UsageError(f"port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UsageError(f"cannot listen on {host}:{port} ({error.strerror}); pick another --port") from None


def prepare_store(uri: str) -> None:
    """Create the database and run MLflow's migrations once, before any server worker touches it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from gsibench.tracking.store import use_wal

    use_wal(uri)
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except MlflowException as error:
        raise UsageError(f"backend store '{uri}' is not usable: {error.message}") from None
    except Exception as error:
        raise UsageError(f"backend store '{uri}' is not usable: {error}") from None


def server_command(backend: str, artifacts: str, host: str, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
            "--artifacts-destination", artifacts, "--host", host, "--port", str(port), "--workers", str(workers)]


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = HEALTH_TIMEOUT) -> None:
    """Poll ``url``/health until it answers; a UsageError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise UsageError(f"mlflow server exited with code {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise UsageError(f"mlflow server at {url} did not answer /health within {timeout:.0f} s")


def serve(backend: str | None, artifacts_destination: str | None, host: str, port: int, workers: int,
          on_ready: Callable[[str, str, Path], None]) -> int:
    """Check the store and the port, create the database, run ``mlflow server`` until it stops (Ctrl-C or
    SIGTERM), calling ``on_ready(url, backend, artifacts)`` once it answers. Returns the exit status."""
    backend = backend or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    check_backend(backend)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    check_port(host, port)
    if artifacts_destination:
        artifacts = Path(artifacts_destination).expanduser().resolve()
    elif backend.startswith("sqlite:///"):
        artifacts = Path(backend.removeprefix("sqlite:///")).resolve().parent / "mlartifacts"
    else:
        artifacts = Path.cwd() / "mlartifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    prepare_store(backend)
    url = f"http://{host}:{port}"
    process = subprocess.Popen(server_command(backend, str(artifacts), host, port, workers))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server too when we are terminated
    try:
        wait_healthy(url, process)
        on_ready(url, backend, artifacts)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return 0 if process.returncode in (0, -signal.SIGINT, -signal.SIGTERM) else 1
