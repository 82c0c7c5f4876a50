"""The `fcnet` command line: the only package that imports typer (DESIGN.md).

Each command parses its arguments, calls the engine, renders through `fcnet_cli.display` and
turns the outcome into an exit code; errors become exit codes in one place (`app._guarded`).
The engine and rich are imported inside the commands, so `fcnet --help`, `validate` and
`schema` never load torch.
"""

# each module registers its commands (import order is the order of `fcnet --help`)
from fcnet_cli.cli import run, describe, serve, sweep, lrfind, integrations  # noqa: F401,I001
from fcnet_cli.cli.app import EXIT_CODES, app

__all__ = ["EXIT_CODES", "app", "main"]


def main() -> None:
    """Console-script entry point (`fcnet`)."""
    app(prog_name="fcnet")


if __name__ == "__main__":
    main()
