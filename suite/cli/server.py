"""``gsibench server``: a real MLflow tracking server (:mod:`gsibench.tracking.server`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "server", help="start an MLflow tracking server (SQLite or PostgreSQL) for batteries",
        description="Start `mlflow server` on loopback with a SQLite or PostgreSQL store, wait until it "
        "answers, and print the tracking URI to pass to `gsibench run --tracking-uri`. Ctrl-C stops it.")
    parser.add_argument("--backend-store-uri", help="sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB "
                        "(default: sqlite:///./mlflow.db, the store `gsibench run` writes without a server)")
    parser.add_argument("--artifacts-destination", help="folder for run artifacts (default: mlartifacts/ beside "
                        "the SQLite file, else ./mlartifacts)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gsibench.tracking.server import serve

    def ready(url, backend, artifacts) -> None:
        print(f"MLflow server ready at {url} (store {backend}, artifacts {artifacts})\n"
              f"  gsibench run --tracking-uri {url}      or   export MLFLOW_TRACKING_URI={url}\n"
              f"  Ctrl-C stops the server.", flush=True)

    return serve(args.backend_store_uri, args.artifacts_destination, args.host, args.port, args.workers, ready)
