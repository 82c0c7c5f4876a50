"""Data: built-in sets, tables read with polars, columns and the canonical form of their cells,
preprocessing, splits and lineage. Imports nothing from `engine.train` or `engine.store`.

    arrays         scikit-learn, synthetic, NPZ and torchvision sets as arrays
    catalog        the built-in data sets: origin, shape, whether on disk (no torch)
    cells          what a cell means whatever type the reader inferred (canonical forms)
    columns        column selection, fitting a Preprocessing on training rows, encoding
    csvformat      a CSV file's separator and decimal comma, decided in one place
    dates          date columns parsed from CSV text and Parquet, turned into numbers
    embedded       numerical embeddings fitted on the training split, applied to every split
    embeddings     piecewise-linear and periodic embeddings of numeric inputs (the maths)
    encoding       raw table columns to model inputs (the one route for every command)
    labels         class labels' names and the one label encoder
    leaks          feature columns that look like label leaks: one notice each
    limits         bounds on rows, columns and bytes, checked while a file streams
    lineage        which file a run trained on, and whether it still is that file
    load           data sets as tensors: load, split (seeded, stratified), normalize
    normalization  per-feature scaling fitted on the training split
    reader         the one chunked table reader (CSV, Parquet) and the one NPZ reader
    splitrows      which rows went to train / validation / test, without encoding
    splits         the seeded, stratified split and label noise on the training split
    synthetic      bundled 2-D sets (moons, circles, spirals) generated from a seed
    tables         tables read whole with polars; the fitted preprocessing stored with checkpoints
"""

__all__ = [
    "arrays",
    "catalog",
    "cells",
    "columns",
    "csvformat",
    "dates",
    "embedded",
    "embeddings",
    "encoding",
    "labels",
    "leaks",
    "limits",
    "lineage",
    "load",
    "normalization",
    "reader",
    "splitrows",
    "splits",
    "synthetic",
    "tables",
]
