"""`python -m fcnet_cli.cli` = `fcnet`."""

from fcnet_cli.cli import main

main()
