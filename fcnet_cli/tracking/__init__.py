"""MLflow tracking of runs, seed groups and sweeps (the `mlflow` extra). mlflow is imported
only when a run asks for it (`output.mlflow`, `--mlflow`, `fcnet mlflow-sync`).

    records.py  what a run directory says, as MLflow params, metrics, tags and artifacts (no mlflow)
    store.py    the tracking URI and experiment, one probe, a client whose failures never raise
    model.py    the best checkpoint as an MLflow pyfunc model (raw columns in, predictions out)
    runs.py     the pieces of a run: start, end, epochs, params, tags, artifacts, group statistics
    logger.py   the engine callback: a run per member, per-epoch metrics, a parent per seed group
    sweeps.py   a sweep: a parent run and a child per trial, from leaderboard.csv
    sync.py     a finished run, seed group or sweep folder logged from its files
"""
