"""The training engine. Never prints, never exits; reports through `fcnet_cli.events` callbacks
and raises `fcnet_cli.errors`.

    data/        tables, columns, preprocessing, splits, lineage (see data/__init__.py)
    train/       population, steps, optimizers, the loop, defaults, groups, ensembles
    store/       run-directory files, records, checkpoints
    model.py     the canonical exportable model: an nn.Sequential MLP, an Ensemble of them, or
                 a BatchEnsemble
    batchensemble.py  model.ensemble_kind: shared: K members sharing each layer's weight matrix
    evaluate.py  metrics of a model on one split
    ranking.py   binary classification by score: ROC-AUC, PR-AUC, thresholds

Imports point one way: data and store never import train (tests/test_layering.py).
"""

__all__ = ["batchensemble", "data", "evaluate", "model", "ranking", "store", "train"]
