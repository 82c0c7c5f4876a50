"""MLflow tracking of runs, seed groups and sweeps (the `mlflow` extra). mlflow is imported
only when a run asks for it (`output.mlflow`, `--mlflow`, `fcnet mlflow-sync`).

    records.py  what a run directory says, as MLflow params, metrics, tags and artifacts (no mlflow)
    store.py    the tracking URI and experiment, one probe, a client whose failures never raise
    model.py    the best checkpoint as an MLflow pyfunc model (raw columns in, predictions out)
    logger.py   the engine callback: a run per member, per-epoch metrics, a parent per seed group
    sync.py     a finished run, seed group or sweep directory logged from its files
"""
