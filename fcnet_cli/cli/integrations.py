"""`fcnet mlflow-sync` (a finished run logged to MLflow) and `fcnet dashboard` (a sweep's
study in optuna-dashboard)."""

from pathlib import Path
from typing import Annotated

import typer

from fcnet_cli.cli.app import DebugOpt, _run, app
from fcnet_cli.cli.tracking import MlflowOpt, uri_or_default
from fcnet_cli.engine.store.layout import RunDir
from fcnet_cli.errors import RunError, UsageError

__all__ = ["dashboard", "mlflow_sync"]


@app.command("mlflow-sync")
def mlflow_sync(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(
        metavar="RUN_DIR", show_default=False,
        help="A run directory, a seed group folder or a sweep folder (runs/NAME/latest: the "
             "newest run of NAME).")],
    mlflow: MlflowOpt = None,
    experiment: Annotated[str | None, typer.Option(
        metavar="NAME", show_default=False,
        help="MLflow experiment (default: output.mlflow.experiment, else the run's "
             "experiment name).")] = None,
    run_name: Annotated[str | None, typer.Option(
        metavar="NAME", show_default=False, help="MLflow run name (default: the folder's "
                                                 "name).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Log a finished run directory to MLflow from its files: params, every epoch's metrics,
    final and test metrics, tags, config.yaml, metrics.csv, the model and any ONNX export.

    A seed group becomes a parent run with a child per seed; a sweep folder a parent run
    with a child per trial. Use it for a run whose tracking server was unreachable.
    """
    _run(ctx, debug=debug, body=lambda: _sync(run_dir, mlflow, experiment, run_name))


def _sync_settings(path: Path, uri: str | None, experiment: str | None):  # type: ignore[no-untyped-def]
    import yaml

    from fcnet_cli.tracking.store import available, resolve

    if not available():
        raise UsageError("fcnet mlflow-sync needs the mlflow package: pip install "
                         "'fcnet[mlflow]'")
    config_file = RunDir(path).config
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) \
        if config_file.is_file() else {}
    output = (config or {}).get("output") or {}
    cfg = output.get("mlflow") or {}
    if (path / "sweep.yaml").is_file():
        name, out_dir = path.name, path.parent
    else:
        name = output.get("name") or path.parent.name
        out_dir = Path(output.get("dir") or path.parent.parent)
    return resolve(uri_or_default(uri) or cfg.get("tracking_uri"),
                   experiment or cfg.get("experiment") or name, None, out_dir)


def _sync(path: Path, uri: str | None, experiment: str | None, run_name: str | None) -> int:
    from fcnet_cli.engine.store.files import resolve_latest
    from fcnet_cli.tracking.store import Tracking
    from fcnet_cli.tracking.sync import sync_dir

    path = resolve_latest(path, any_status=True)
    if not path.is_dir() or not any((path / f).is_file() for f in
                                    (RunDir.CONFIG, RunDir.GROUP, "sweep.yaml")):
        raise UsageError(f"{path}: not a run directory, seed group or sweep folder")
    tracking = Tracking(_sync_settings(path, uri, experiment))
    ids = sync_dir(tracking, path, run_name)
    warning = tracking.warning()
    if warning is not None:
        raise RunError(warning)
    s = tracking.settings
    typer.echo(f"logged {path} to {s.uri} (experiment {s.experiment}): "
               f"{len(ids)} run{'s' if len(ids) != 1 else ''}, parent {ids[0]}"
               if len(ids) > 1 else f"logged {path} to {s.uri} (experiment {s.experiment}): "
               f"run {ids[0] if ids else '-'}")
    return 0


@app.command()
def dashboard(
    ctx: typer.Context,
    sweep_dir: Annotated[Path, typer.Argument(
        metavar="SWEEP_DIR", show_default=False,
        help="A sweep folder (runs/NAME): its optuna.journal is the study storage.")],
    storage: Annotated[str | None, typer.Option(
        metavar="URL", show_default=False,
        help="The database URL the sweep ran with (--storage of fcnet sweep) instead of the "
             "folder's journal file.")] = None,
    host: Annotated[str, typer.Option(
        metavar="HOST", help="Address to bind (0.0.0.0 opens it to the network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT")] = 8080,
    debug: DebugOpt = False,
) -> None:
    """Open a sweep's Optuna study in optuna-dashboard (needs the dashboard extra) and print
    its URL; Ctrl-C stops it."""
    _run(ctx, debug=debug, body=lambda: _dashboard(sweep_dir, storage, host, port))


def _dashboard(sweep_dir: Path, storage: str | None, host: str, port: int) -> int:
    import importlib.util

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise UsageError("fcnet dashboard needs optuna-dashboard: pip install "
                         "'fcnet[dashboard]'")
    from fcnet_cli.sweep.store import JOURNAL, quiet_optuna, redact

    if storage is None:
        journal = sweep_dir / JOURNAL
        if not journal.is_file():
            raise UsageError(f"{sweep_dir}: no {JOURNAL} (not a sweep folder; a sweep run "
                             "with --storage URL needs --storage URL here too)")
    quiet_optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna_dashboard import run_server

    where = storage if storage is not None else \
        JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))
    shown = redact(storage) if storage else str(sweep_dir / JOURNAL)
    typer.echo(f"optuna-dashboard on {shown}: http://{host}:{port}/dashboard/ "
               "(Ctrl-C to stop)", err=False)
    import sys

    sys.stdout.flush()
    try:
        run_server(where, host=host, port=port)
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        raise RunError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    return 0
