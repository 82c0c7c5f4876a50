"""`model.num_embeddings` fitted on loaded splits: the training split fits it, every split
goes through it, and the preprocessing (so every checkpoint) keeps it. The maths and the
stored form are `engine.data.embeddings`."""

from __future__ import annotations

from dataclasses import replace

from fcnet_cli.config import ModelConfig
from fcnet_cli.engine.data.embeddings import NumEmbedding, numeric_inputs
from fcnet_cli.engine.data.load import DataSplits

__all__ = ["embed_splits"]


def embed_splits(data: DataSplits, model: ModelConfig, seed: int) -> DataSplits:
    """`data` with `model.num_embeddings` fitted on its training split and applied to every
    split; the fitted embedding goes into a copy of the preprocessing (so into checkpoints).
    Unchanged when the setting is ``none``, the table has no numeric column, or `data` is
    already embedded."""
    prep = data.preprocessing
    inputs = numeric_inputs(prep.columns)
    if model.num_embeddings == "none" or prep.embedding is not None or not inputs:
        return data
    emb = NumEmbedding.fit(model.num_embeddings, data.x_train, inputs,
                           n_bins=model.num_bins, n_frequencies=model.num_frequencies,
                           sigma=model.periodic_sigma, seed=seed)
    return replace(data, x_train=emb.apply(data.x_train), x_val=emb.apply(data.x_val),
                   x_test=emb.apply(data.x_test), preprocessing=replace(prep, embedding=emb))
