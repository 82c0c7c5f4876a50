"""Storage: run-directory files, records, checkpoints and their schema. Writes and reads what
training produced; never trains or evaluates.

    checkpoint  the checkpoint format: manifest, atomic directories, safe loading
    files       fresh run directories, atomic writes, the run-dir lock
    metaschema  the schema of a checkpoint's meta.json, checked on every load
    records     config.yaml, metrics.csv, summary.json, checkpoint metadata
    seedpick    which seed of a seed group stands for the group
"""

__all__ = [
    "checkpoint",
    "files",
    "metaschema",
    "records",
    "seedpick",
]
