"""Hyperparameter sweeps on Optuna: spec, search space, storage, worker, leaderboard, runner.
Every group of same-layout trials trains as one population of the engine."""
