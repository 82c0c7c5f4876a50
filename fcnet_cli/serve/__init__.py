"""Use a trained model: `load_model`, streaming prediction, evaluation on new data, export.

Layer: imports the leaves and the engine only; `fcnet predict`, `fcnet eval --data` and
`fcnet export` in `fcnet_cli.cli` are thin commands over these modules.
"""

__all__: list[str] = []
