"""`--mlflow` on train and sweep: the MLflow callback, the sweep's log, one line of report."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fcnet_cli.config import Experiment
    from fcnet_cli.tracking.logger import MlflowLogger
    from fcnet_cli.tracking.store import Tracking

__all__ = ["MlflowOpt", "mlflow_logger", "report_tracking", "sweep_tracking", "sync_sweep_dir",
           "uri_or_default"]

MlflowOpt = Annotated[str | None, typer.Option(
    "--mlflow", metavar="URI", show_default=False,
    help="Log to MLflow at this tracking URI (http://host:port or sqlite:///file.db; turns "
         "output.mlflow on; 'default' = sqlite:///<output.dir>/mlflow.db).")]


def uri_or_default(uri: str | None) -> str | None:
    return None if uri in (None, "default") else uri


def _wanted(exp: "Experiment", uri: str | None) -> bool:
    return uri is not None or exp.output.mlflow is not None


def mlflow_logger(exp: "Experiment", uri: str | None, *, seeds: bool = False
                  ) -> "MlflowLogger | None":
    """The MLflow callback `output.mlflow` or `--mlflow` asks for (None: off; mlflow unloaded)."""
    if not _wanted(exp, uri):
        return None
    from fcnet_cli.tracking.logger import MlflowLogger
    from fcnet_cli.tracking.store import settings_for

    settings = settings_for(exp, uri)
    assert settings is not None
    return MlflowLogger(settings, seeds=seeds)


def report_tracking(tracking: "Tracking", *, quiet: bool, ids: list[str],
                    folder: str | None = None) -> None:
    """One line on stderr: the warning when something was not logged (and how to log the
    run's `folder` later), else where it went."""
    warning = tracking.warning(folder)
    if warning is not None:
        typer.echo(f"warning: {warning}", err=True)
    elif not quiet and ids:
        s = tracking.settings
        typer.echo(f"mlflow: logged run {ids[0]} to {s.uri} (experiment {s.experiment})",
                   err=True)


def sweep_tracking(exp: "Experiment", name: str, uri: str | None) -> "Tracking | None":
    """What a sweep's `base.output.mlflow` or `--mlflow` asks for, checked before it runs."""
    if not _wanted(exp, uri):
        return None
    from fcnet_cli.tracking.store import Tracking, settings_for

    settings = settings_for(exp, uri, name=name)
    assert settings is not None
    return Tracking(settings)


def sync_sweep_dir(tracking: "Tracking | None", sweep_dir: Path, *, quiet: bool) -> None:
    """`fcnet sweep --mlflow`: the finished sweep as a parent run with a child per trial."""
    if tracking is None:
        return
    from fcnet_cli.tracking.sweeps import sync_sweep

    report_tracking(tracking, quiet=quiet, ids=sync_sweep(tracking, sweep_dir),
                    folder=str(sweep_dir))
