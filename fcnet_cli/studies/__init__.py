"""The studies page generator: `python -m fcnet_cli.studies` writes docs/studies.md."""
