"""Where a sweep's trials live: the Optuna storage and study, the sweep lock, heartbeats.

By default the sweep folder holds an Optuna journal file, so rerunning the same command resumes
and local worker processes share it. `--storage postgresql://...` uses Optuna's RDB storage:
workers record heartbeats while their populations train, and a trial whose worker stops
beating is failed and re-queued by `RetryHeartbeatStaleTrialCallback`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from fcnet_cli.config import ConfigError, flatten
from fcnet_cli.engine.store.files import pid_alive
from fcnet_cli.errors import RunError, UsageError
from fcnet_cli.sweep.spec import Sweep

__all__ = ["JOURNAL", "Heartbeat", "Store", "open_store", "quiet_optuna", "redact", "worker_id"]

JOURNAL = "optuna.journal"
CONNECT_TIMEOUT_S = 5
MAX_RETRY = 2  # a trial whose worker died is re-queued at most this many times
UNCLAIMED_S = 120  # a RUNNING trial that no worker has recorded itself on after this is lost


def quiet_optuna() -> None:
    """The engine never prints: no per-trial INFO lines, no experimental-feature warnings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", message=".*RetryFailedTrialCallback")


def redact(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _open_rdb(url: str, sweep: Sweep) -> RDBStorage:
    shown = redact(url)
    if "://" not in url:
        raise UsageError(f"--storage {shown}: expected a database URL such as "
                         f"postgresql://user:password@host:5432/dbname")
    url = _with_driver(url)
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    kwargs: dict[str, Any] = {}
    if scheme in ("postgresql", "postgres", "mysql"):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    elif scheme == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=sweep.spec.heartbeat_interval,
            grace_period=sweep.spec.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY))
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise UsageError(f"--storage {shown}: not a usable database URL ({_first_line(e)})"
                         ) from None
    except ImportError as e:
        raise UsageError(f"--storage {shown}: the database driver is not installed "
                         f"({e.name or e}); for PostgreSQL: pip install psycopg2-binary") from None
    except Exception as e:  # connection refused, unknown host, timeout, bad password
        raise RunError(f"--storage {shown}: cannot connect: {_first_line(e)}") from None


def _with_driver(url: str) -> str:
    """postgresql:// (or postgres://) -> the installed driver: SQLAlchemy's default for the
    bare scheme may be a driver that is not installed (psycopg 3 vs psycopg2)."""
    import importlib.util

    scheme, rest = url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return f"postgresql://{rest}"


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return (text.splitlines() or [type(e).__name__])[0]


class Store:
    """One sweep's study plus the storage-level operations a worker needs."""

    def __init__(self, sweep: Sweep, storage: BaseStorage, study: optuna.Study):
        self.sweep, self.storage, self.study = sweep, storage, study
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.lock_path = sweep.sweep_dir / ".sweep.lock"

    @property
    def heartbeats(self) -> bool:
        return isinstance(self.storage, RDBStorage) and \
            self.storage.get_heartbeat_interval() is not None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One local process at a time prepares and claims (remote workers: see sweep/worker.py)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: claims stay atomic, duplicates are dropped at claim
            yield
            return
        with open(self.lock_path, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def trial_id(self, number: int) -> int:
        """The storage's id of this study's trial `number` (what heartbeats are keyed by)."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def claim(self, trial: FrozenTrial) -> optuna.Trial | None:
        """Move a WAITING trial to RUNNING; None when another worker got it first."""
        trial_id = self.trial_id(trial.number)
        try:
            if not self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                return None
        except optuna.exceptions.UpdateFinishedTrialError:
            return None
        return optuna.Trial(self.study, trial_id)

    def fail(self, trial: FrozenTrial, status: str, reason: str) -> None:
        """Fail a RUNNING trial that is not this worker's (it died); no-op if it finished."""
        trial_id = self.trial_id(trial.number)
        try:
            self.storage.set_trial_user_attr(trial_id, "status", status)
            self.storage.set_trial_user_attr(trial_id, "reason", reason)
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def fail_lost_trials(self) -> None:
        """Fail trials whose worker is gone: stale heartbeats (RDB, re-queued by Optuna), or
        a dead process on this host (journal storage has no heartbeats)."""
        if self.heartbeats:
            optuna.storages.fail_stale_trials(self.study)
        host, now = socket.gethostname(), datetime.datetime.now()
        for t in self.trials((TrialState.RUNNING,)):
            owner = str(t.user_attrs.get("worker", ""))
            h, _, pid = owner.rpartition(":")
            if not owner and t.datetime_start is not None and \
                    (now - t.datetime_start).total_seconds() > UNCLAIMED_S:
                # a worker records itself right after claiming: it died in between
                self.fail(t, "interrupted", "its worker stopped right after claiming it")
            elif not self.heartbeats and h == host and pid.isdigit() and not pid_alive(int(pid)):
                self.fail(t, "interrupted", f"worker process {pid} ended during the trial")

    def others_running(self) -> bool:
        """RUNNING trials that may still finish or be failed as stale (worth waiting for)."""
        host = socket.gethostname()
        for t in self.trials((TrialState.RUNNING,)):
            h, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
            if self.heartbeats or (h == host and pid.isdigit() and pid_alive(int(pid))):
                return True
        return False


def open_store(sweep: Sweep, url: str | None = None) -> Store:
    """Open (or create) the sweep's study; refuse to resume it with a different spec."""
    quiet_optuna()
    if url is None:
        sweep.sweep_dir.mkdir(parents=True, exist_ok=True)
        storage: BaseStorage = JournalStorage(JournalFileBackend(str(sweep.sweep_dir / JOURNAL)))
    else:
        storage = _open_rdb(url, sweep)
        sweep.sweep_dir.mkdir(parents=True, exist_ok=True)  # only once the database answers
    try:
        direction = StudyDirection.MAXIMIZE if sweep.direction == "maximize" else \
            StudyDirection.MINIMIZE
        study = optuna.create_study(storage=storage, study_name=sweep.name,
                                    direction=direction, load_if_exists=True)
    except Exception as e:
        raise RunError(f"cannot open the study '{sweep.name}': {_first_line(e)}") from None
    if [d.name.lower() for d in study.directions] != [sweep.direction]:
        raise ConfigError([f"study '{sweep.name}' exists with direction "
                           f"{study.directions[0].name.lower()}; this sweep has "
                           f"{sweep.direction} (use another name)"])
    _check_identity(study, sweep)
    return Store(sweep, storage, study)


def _check_identity(study: optuna.Study, sweep: Sweep) -> None:
    mine = json.loads(json.dumps(sweep.identity(), default=str))
    saved = study.user_attrs.get("fcnet.sweep")
    if saved is None:
        if not study.get_trials(deepcopy=False) and _has_trial_dirs(sweep):
            raise UsageError(f"{sweep.sweep_dir / 'trials'} holds trial folders but the study "
                             f"'{sweep.name}' has no trials (was {JOURNAL} removed?); remove "
                             f"the folder or give the sweep another name")
        study.set_user_attr("fcnet.sweep", mine)
        return
    if saved == mine:
        return
    a, b = flatten(saved), flatten(mine)
    diff = [f"{k}: {a.get(k)!r} when the sweep started, {b.get(k)!r} now"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    raise ConfigError([f"cannot resume sweep '{sweep.name}' ({sweep.sweep_dir}): its "
                       f"configurations changed; give it another name, or remove the folder "
                       f"to start over"] + diff[:20])


def _has_trial_dirs(sweep: Sweep) -> bool:
    trials = sweep.sweep_dir / "trials"
    return trials.is_dir() and any(trials.iterdir())


class Heartbeat:
    """Records heartbeats for this worker's running trials from a background thread.

    Optuna only beats inside `Study.optimize`; ask/tell workers must do it themselves.
    """

    def __init__(self, store: Store):
        self.store = store
        self.ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if store.heartbeats:
            self._thread = threading.Thread(target=self._run, name="fcnet-heartbeat",
                                            daemon=True)
            self._thread.start()

    def add(self, trial_id: int) -> None:
        if self._thread is None:
            return
        self._beat(trial_id)  # at once: a trial without any heartbeat is never seen as stale
        with self._lock:
            self.ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self.ids.discard(trial_id)

    def _beat(self, trial_id: int) -> None:
        storage = self.store.storage
        assert isinstance(storage, RDBStorage)
        try:
            storage.record_heartbeat(trial_id)
        except Exception:  # a lost connection: the next beat retries
            pass

    def _run(self) -> None:
        interval = self.store.sweep.spec.heartbeat_interval
        while not self._stop.wait(interval):
            with self._lock:
                ids = list(self.ids)
            for trial_id in ids:
                self._beat(trial_id)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
