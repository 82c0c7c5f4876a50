"""Storage: run-directory files, records, checkpoints and their schema. Writes and reads what
training produced; never trains or evaluates.

    checkpoint  the checkpoint format: manifest, atomic directories, safe loading
    files       fresh run directories, atomic writes, the run-dir lock
    layout      RunDir: every file and folder name of a run directory, spelled once
    locate      which checkpoint a path names (run dir, group, `latest`): the one resolver
    metaschema  the schema of a checkpoint's meta.json, checked on every load
    records     config.yaml, metrics.csv, summary.json written; resume state read back
    seedpick    which seed of a seed group stands for the group
    verify      a checkpoint checked as it is read: sizes, format, hashes, layout
"""

__all__ = [
    "checkpoint",
    "files",
    "layout",
    "locate",
    "metaschema",
    "records",
    "seedpick",
    "verify",
]
