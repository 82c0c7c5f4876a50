"""fcnet from Python: scikit-learn estimators over the same engine, config and checkpoints.

    params.py      estimator parameters -> a validated Experiment (the CLI's schema and messages)
    inputs.py      pandas / polars / numpy X and y -> one polars table
    base.py        fit on the table, the checkpoint held as bytes, predict, pickle, save
    classifier.py  FCNetClassifier
    regressor.py   FCNetRegressor

    from fcnet_cli import FCNetClassifier
    clf = FCNetClassifier(hidden=[64], lr=0.05, epochs=30).fit(X, y)
    clf.predict_proba(X_new); clf.save("model")   # fcnet predict model new.csv
"""

from fcnet_cli.estimators.classifier import FCNetClassifier
from fcnet_cli.estimators.inputs import InputError
from fcnet_cli.estimators.params import ParameterError
from fcnet_cli.estimators.regressor import FCNetRegressor

__all__ = ["FCNetClassifier", "FCNetRegressor", "InputError", "ParameterError"]
