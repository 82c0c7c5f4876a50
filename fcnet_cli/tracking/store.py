"""Where runs are tracked: the URI and experiment, one reachability probe, and a client whose
failures never reach training.

An unreachable server must not stop or slow a run: an http(s) URI is probed once (a TCP
connection, `PROBE_SECONDS`), MLflow's HTTP client gets short timeouts and no retries (unless
the environment sets them), and the first failure switches tracking off for the rest of the
run; `Tracking.warning()` then says, in one line, what was not logged.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from fcnet_cli.config import Experiment, MlflowConfig
from fcnet_cli.errors import UsageError

__all__ = ["ARTIFACTS", "DB_FILE", "PROBE_SECONDS", "Tracking", "TrackingSettings", "available",
           "probe", "resolve", "settings_for"]

DB_FILE = "mlflow.db"  # the default store: sqlite:///<output.dir>/mlflow.db
ARTIFACTS = "mlartifacts"  # beside a SQLite store: its experiments' artifacts
PROBE_SECONDS = 2.0
# MLflow's client, unless the environment says otherwise: fail fast, never retry for minutes;
# no progress bars on the training's terminal
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                  "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
T = TypeVar("T")


def available() -> bool:
    return importlib.util.find_spec("mlflow") is not None


@dataclass(frozen=True)
class TrackingSettings:
    """A resolved `output.mlflow`."""

    uri: str
    experiment: str
    run_name: str | None = None
    artifact_location: str | None = None  # for a new experiment in a SQLite store


def resolve(uri: str | None, experiment: str, run_name: str | None = None,
            output_dir: Path = Path("runs")) -> TrackingSettings:
    """The tracking URI (default: a SQLite store in `output_dir`) and, for a SQLite store, an
    artifact folder beside it (MLflow's default would be ./mlruns of the working directory)."""
    if uri is None:
        uri = f"sqlite:///{(output_dir.resolve() / DB_FILE).as_posix()}"
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        location = (db.resolve().parent / ARTIFACTS).as_uri()
    return TrackingSettings(uri, experiment, run_name, location)


def settings_for(exp: Experiment, uri: str | None = None, name: str | None = None
                 ) -> TrackingSettings | None:
    """What `output.mlflow` (or `--mlflow URI`, which turns it on) asks for; None = off.
    `name`: the default experiment name (default: the experiment's own, `output.name`);
    `uri="default"`: the default store."""
    cfg = exp.output.mlflow
    if cfg is None and uri is None:
        return None
    if not available():
        raise UsageError("MLflow tracking needs the mlflow package: pip install 'fcnet[mlflow]'")
    cfg = cfg or MlflowConfig()
    return resolve(None if uri == "default" else uri or cfg.tracking_uri,
                   cfg.experiment or name or exp.name, cfg.run_name, Path(exp.output.dir))


def probe(uri: str, seconds: float = PROBE_SECONDS) -> None:
    """Raise ConnectionError when an http(s) tracking server does not accept a connection."""
    url = urlparse(uri)
    if url.scheme not in ("http", "https") or not url.hostname:
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=seconds).close()
    except OSError as e:
        raise ConnectionError(f"unreachable ({e.strerror or e})") from None


def _quiet_mlflow() -> None:
    """Short client timeouts (before MLflow reads them) and MLflow's INFO lines off (after
    `import mlflow`, which sets its own log level)."""
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow  # noqa: F401

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class Tracking:
    """An MLflow client for one experiment that never raises: `call` returns None once a call
    has failed (or the store could not be reached), and `warning()` reports it."""

    settings: TrackingSettings
    client: Any = None
    experiment_id: str | None = None
    problem: str | None = None
    skipped: list[str] = field(default_factory=list)  # what was not logged, in order

    def open(self) -> bool:
        if self.client is not None or self.problem is not None:
            return self.client is not None
        try:
            probe(self.settings.uri)
            _quiet_mlflow()
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.settings.uri)
            found = client.get_experiment_by_name(self.settings.experiment)
            self.experiment_id = found.experiment_id if found is not None else \
                client.create_experiment(self.settings.experiment,
                                         artifact_location=self.settings.artifact_location)
            self.client = client
        except Exception as e:  # any failure of the store: tracking off, training goes on
            self._fail(e)
        return self.client is not None

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """`fn(client, *args)`, or None (and `what` noted as not logged) once tracking is off."""
        if not self.open():
            self._skip(what)
            return None
        try:
            return fn(self.client, *args, **kwargs)
        except Exception as e:
            self._fail(e)
            self._skip(what)
            return None

    def _skip(self, what: str) -> None:
        if what not in self.skipped:
            self.skipped.append(what)

    def _fail(self, e: BaseException) -> None:
        text = str(e).strip().splitlines()
        self.problem = text[0][:200] if text else type(e).__name__
        self.client = None

    def warning(self, folder: str | None = None) -> str | None:
        """One line: why tracking stopped, what was not logged and, given the run's `folder`,
        the command that logs it later; None when everything went in."""
        if self.problem is None:
            return None
        lost = ", ".join(self.skipped) or "nothing"
        text = f"mlflow ({self.settings.uri}): {self.problem}; not logged: {lost}"
        if folder is None:
            return text
        return text + (f" (log it later with: fcnet mlflow-sync {shlex.quote(folder)} "
                       f"--mlflow {shlex.quote(self.settings.uri)})")
